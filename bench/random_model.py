"""A model file with random weights, for the benchmarks that time a model but not its accuracy."""

from stkd_ros.data.classes import CAMVID_CLASSES as CLASSES, CAMVID_PALETTE as PALETTE
from stkd_ros.model_file import save_model_file
from stkd_ros.models import build_model


def random_model_file(path, arch='lraspp_mobilenetv3', size=(128, 256), model=None):
    """Write ``model`` (default: a fresh ``arch``) as a stkd model file at input ``size``."""
    model = model if model is not None else build_model(arch, num_classes=len(CLASSES))
    save_model_file(path, model, {
        'arch': arch, 'arch_args': {}, 'num_classes': len(CLASSES), 'classes': list(CLASSES),
        'palette': [list(map(int, c)) for c in PALETTE], 'input_size': list(size),
        'mean': [0.485, 0.456, 0.406], 'std': [0.229, 0.224, 0.225], 'dataset': 'synthetic'})
    return path
