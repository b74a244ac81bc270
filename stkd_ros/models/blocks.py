"""Small building blocks shared by the models."""

from stkd_ros.errors import InputError
import torch
from torch import nn
import torch.nn.functional as nnf


class ConvBNReLU(nn.Sequential):
    def __init__(self, cin: int, cout: int, kernel: int = 3, stride: int = 1, dilation: int = 1,
                 groups: int = 1):
        padding = dilation * (kernel - 1) // 2
        super().__init__(
            nn.Conv2d(cin, cout, kernel, stride, padding, dilation=dilation, groups=groups,
                      bias=False),
            nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


def upsample_like(x: torch.Tensor, ref_hw) -> torch.Tensor:
    """Bilinear resize of ``x`` to spatial size ``ref_hw`` (no-op when it already matches)."""
    if tuple(x.shape[-2:]) == tuple(ref_hw):
        return x
    return nnf.interpolate(x, size=tuple(ref_hw), mode='bilinear', align_corners=False)


def load_backbone_weights(module: nn.Module, path, name: str, prefix: str = ''):
    """
    Load ImageNet weights into a backbone from a local file; nothing is downloaded.

    ``prefix`` is stripped from the file's keys (torchvision's classifiers keep the backbone
    under ``features.``). Keys the backbone lacks (a classifier head) are skipped; a file
    that matches nothing is an error.
    """
    from pathlib import Path
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f'{name}: pretrained weights not found at {path}')
    if path.suffix == '.safetensors':
        from safetensors.torch import load_file
        state = load_file(str(path))
    else:
        state = torch.load(path, map_location='cpu', weights_only=True)
    if isinstance(state, dict) and 'state_dict' in state:
        state = state['state_dict']
    state = {k[len(prefix):] if k.startswith(prefix) else k: v for k, v in state.items()}
    own = module.state_dict()
    matched = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    if not matched:
        raise InputError(f'{name}: no tensor in {path} matches the backbone; is it the right '
                         f'architecture?')
    module.load_state_dict(matched, strict=False)
    return len(matched)
