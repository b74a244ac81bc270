"""Small model files for the bag and report tests: real weights, as `stkd` writes them."""

from stkd_ros.model_file import save_model_file
from stkd_ros.models import build_model
import torch


def tiny_model_file(path, seed: int, model=None, **meta):
    """Write an untrained bisenet_lite at 64x128 (11 classes); ``meta`` overrides entries."""
    torch.manual_seed(seed)
    save_model_file(path, model or build_model('bisenet_lite', 11).eval(), {
        'arch': 'bisenet_lite', 'arch_args': {}, 'num_classes': 11,
        'classes': [f'c{i}' for i in range(11)], 'palette': [[20 * i, 0, 0] for i in range(11)],
        'input_size': [64, 128], 'mean': [0.485, 0.456, 0.406], 'std': [0.229, 0.224, 0.225],
        **meta})
    return path


def varied_model_file(path, seed: int = 0):
    """
    :func:`tiny_model_file` whose masks vary over a frame (an untrained one's are one class).

    Its batch-norm statistics are drawn at random, as a trained model's are not zero and one.
    """
    torch.manual_seed(seed)
    model = build_model('bisenet_lite', 11).eval()
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.2, 1.5)
    return tiny_model_file(path, seed, model)
