"""
`stkd export --int8`: ONNX Runtime static INT8 quantization, calibrated on training frames.

The student is exported to FP32 ONNX (export.py) and quantized in QDQ format, the one ONNX
Runtime's CPU kernels are optimized for: weights int8 per output channel, activations uint8
with ranges measured (MinMax) on N frames of the data the model was trained on. Each frame goes
through ``inference.model_input``, the node's preprocessing, so the ranges are those of what
the model sees when deployed. The INT8 file keeps the model file's metadata and adds a
``quantization`` entry saying how it was made.
"""

import logging
from pathlib import Path
import random
import tempfile

import numpy as np
from stkd_ros.commands.export import export_onnx, write_metadata
from stkd_ros.config import Config, config_from_dict, ConfigError
from stkd_ros.errors import InputError
from stkd_ros.inference import model_input
from stkd_ros.model_file import read_metadata

log = logging.getLogger(__name__)

DEFAULT_FRAMES = 64
# Op types left in float (default none). Keeping MobileNetV3's hard-swish parts (HardSigmoid,
# Mul) or the logits' Resize in float was measured and made INT8 no faster: docs/architecture.md,
# "Export and INT8".
KEEP_FLOAT_OP_TYPES = ()


def calibration_frames(model_path, frames: int = DEFAULT_FRAMES, data_root=None,
                       meta=None) -> tuple:
    """
    ``frames`` training frames of the model's dataset as model input, and where they came from.

    Returns ((N, 3, h, w) float32, source dict). The synthetic world is rendered with the
    settings the model was trained on (from its provenance); CamVid and Cityscapes are read
    from ``data_root``.
    """
    if frames < 1:
        raise InputError(f'--calibration: expected 1 or more frames, got {frames}')
    meta = meta or read_metadata(model_path)
    dataset = meta.get('dataset', 'synthetic')
    data = _training_data(meta).data
    if dataset != 'synthetic':
        if data_root is None:
            raise InputError(f'{model_path} was trained on {dataset}: calibration reads its '
                             f'training frames; give the {dataset} directory with --data-root')
        data.root = str(data_root)
    elif data_root is not None:
        raise InputError(f'{model_path} was trained on the synthetic world, which is rendered, '
                         f'not read: leave out --data-root')
    data.dataset = dataset
    from stkd_ros.data.datasets import build_clips
    clips = build_clips(data, 'train', clip_length=1, gap=1)
    # Evenly spread over the training set (repeats only if it has fewer frames than asked);
    # the synthetic train split draws its key frame at random: seeded, restored afterwards.
    picks = np.linspace(0, len(clips) - 1, frames).round().astype(int)
    state = random.getstate()
    random.seed(0)
    try:
        images = np.stack([clips[int(i)].frames[0] for i in picks])
    finally:
        random.setstate(state)
    x = model_input(images, meta['input_size'], meta['mean'], meta['std'])
    source = {'dataset': dataset, 'split': 'train', 'frames': frames,
              'preprocessing': 'stkd_ros.inference.model_input'}
    return x, source


def _training_data(meta) -> Config:
    """Return the config the model was trained with (its provenance), or the defaults."""
    saved = meta.get('provenance', {}).get('config')
    if saved:
        try:
            return config_from_dict(saved)
        except ConfigError as exc:   # written by another version: the defaults will do
            log.warning('provenance config not readable (%s); calibrating on the default '
                        'settings of %s', exc, meta.get('dataset', 'synthetic'))
    return config_from_dict({})


class _Frames:
    """
    ONNX Runtime's CalibrationDataReader protocol over model inputs, one frame per run.

    ``set_range`` serves a stride of frames at a time (``CalibStridedMinMax``): ranges are
    merged after each stride, so memory holds one stride's activations, not N frames'.
    """

    def __init__(self, x: np.ndarray):
        self.x = x
        self.set_range(0, len(x))

    def __len__(self):
        return len(self.x)

    def set_range(self, start_index: int, end_index: int):
        self.items = iter(range(start_index, min(end_index, len(self.x))))

    def get_next(self):
        i = next(self.items, None)
        return None if i is None else {'image': self.x[i:i + 1]}


def _stride(frames: int, most: int = 8) -> int:
    """Return the largest divisor of ``frames`` up to ``most`` (ORT wants a divisor)."""
    return max(d for d in range(1, min(frames, most) + 1) if frames % d == 0)


def quantize_int8(model_path, onnx_path, frames: int = DEFAULT_FRAMES, data_root=None,
                  keep_float_op_types=KEEP_FLOAT_OP_TYPES) -> Path:
    """Write the model file as an INT8 ONNX model, calibrated on ``frames`` training frames."""
    from onnxruntime.quantization import (CalibrationMethod, QuantFormat, QuantType,
                                          quant_pre_process, quantize_static)
    import onnx
    meta = read_metadata(model_path)
    x, source = calibration_frames(model_path, frames, data_root, meta)
    onnx_path = Path(onnx_path)
    onnx_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = export_onnx(model_path, Path(tmp) / 'fp32.onnx')
        prepared = Path(tmp) / 'prepared.onnx'
        quant_pre_process(str(fp32), str(prepared))   # shape inference + graph fusions
        op_types = sorted({n.op_type for n in onnx.load(str(prepared)).graph.node}
                          - set(keep_float_op_types))
        quantize_static(str(prepared), str(onnx_path), _Frames(x),
                        quant_format=QuantFormat.QDQ, op_types_to_quantize=op_types,
                        per_channel=True, activation_type=QuantType.QUInt8,
                        weight_type=QuantType.QInt8, calibrate_method=CalibrationMethod.MinMax,
                        extra_options={'CalibStridedMinMax': _stride(len(x))})
    meta['quantization'] = {
        'precision': 'int8', 'tool': 'onnxruntime.quantization.quantize_static',
        'format': 'QDQ', 'weights': 'int8 per channel', 'activations': 'uint8',
        'calibration': {**source, 'method': 'MinMax'},
        'float_op_types': sorted(keep_float_op_types)}
    write_metadata(onnx_path, meta)
    log.info('wrote %s (INT8, calibrated on %d %s frames)', onnx_path, frames, source['dataset'])
    return onnx_path
