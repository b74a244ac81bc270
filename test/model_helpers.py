"""Small model files for the bag and report tests: real weights, as `stkd` writes them."""

from stkd_ros.model_file import save_model_file
from stkd_ros.models import build_model
import torch


def tiny_model_file(path, seed: int, **meta):
    """Write an untrained bisenet_lite at 64x128 (11 classes); ``meta`` overrides entries."""
    torch.manual_seed(seed)
    save_model_file(path, build_model('bisenet_lite', 11).eval(), {
        'arch': 'bisenet_lite', 'arch_args': {}, 'num_classes': 11,
        'classes': [f'c{i}' for i in range(11)], 'palette': [[20 * i, 0, 0] for i in range(11)],
        'input_size': [64, 128], 'mean': [0.485, 0.456, 0.406], 'std': [0.229, 0.224, 0.225],
        **meta})
    return path
