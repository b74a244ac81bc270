"""
The precision of the teacher's forward where it labels: float32, or bfloat16 under autocast.

The teacher labels in two places: `stkd distill`'s online targets and `stkd label`'s store.
Under ``torch.autocast(..., dtype=torch.bfloat16)`` its convolutions and matrix products run
in bfloat16 (normalization, softmax and the losses stay float32), and every floating output
is handed on as float32, so what reads the outputs (the losses' soft targets and features,
the labeler's probabilities) is unchanged in type.

``teacher.precision`` (config): ``fp32``, ``bf16``, or ``auto``: bf16 where the device
computes it natively (a CPU with AVX-512 BF16 or AMX, a CUDA GPU with bfloat16 units), else
fp32, since emulated bfloat16 is slower than float32. ``fp32`` switches any autocast around
the call off, so its outputs are those of a plain float32 forward.
"""

import logging

from stkd_ros.config import TEACHER_PRECISIONS
import torch

log = logging.getLogger(__name__)


def native_bf16(device) -> bool:
    """Whether ``device`` (a torch device or its name) computes bfloat16 natively."""
    device = torch.device(device)
    if device.type == 'cuda':
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported(
            including_emulation=False)
    if device.type == 'cpu':
        return torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
    return False


def resolve_precision(setting: str, device) -> str:
    """Return the precision ``setting`` means on ``device``: 'fp32' or 'bf16'."""
    if setting not in TEACHER_PRECISIONS:
        raise ValueError(f'teacher precision {setting!r}: expected one of '
                         f'{TEACHER_PRECISIONS}')
    if setting == 'auto':
        return 'bf16' if native_bf16(device) else 'fp32'
    if setting == 'bf16' and not native_bf16(device):
        log.warning('teacher.precision bf16: %s has no native bfloat16; it is emulated, '
                    'slower than fp32', torch.device(device))
    return setting


def teacher_forward(model, x: torch.Tensor, precision: str) -> dict:
    """Return ``model(x)`` run at ``precision`` ('fp32' or 'bf16'), its float outputs float32."""
    if precision not in ('fp32', 'bf16'):
        raise ValueError(f'teacher precision {precision!r}: resolve it first (fp32 or bf16)')
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=precision == 'bf16'):
        out = model(x)
    return {k: v.float() if v.is_floating_point() else v for k, v in out.items()}
