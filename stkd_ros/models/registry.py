"""Model names -> builders: a plain dict, so an editor can follow every name."""

import inspect

from stkd_ros.errors import InputError
from stkd_ros.models.bisenet import BiSeNetLite
from stkd_ros.models.fast_scnn import FastSCNN
from stkd_ros.models.lraspp import LRASPPMobileNetV3
from stkd_ros.models.pspnet import PSPNetResNet18
from stkd_ros.models.teacher import Teacher

MODELS = {
    'lraspp_mobilenetv3': LRASPPMobileNetV3,
    'pspnet_resnet18': PSPNetResNet18,
    'bisenet_lite': BiSeNetLite,
    'fast_scnn': FastSCNN,
    'teacher': Teacher,
}

STUDENTS = ('lraspp_mobilenetv3', 'pspnet_resnet18', 'bisenet_lite', 'fast_scnn')


def build_model(name: str, num_classes: int, **kwargs):
    """Build model ``name`` for ``num_classes`` classes; kwargs are its constructor's."""
    if name not in MODELS:
        raise InputError(f'unknown model {name!r}; expected one of {sorted(MODELS)}')
    builder = MODELS[name]
    try:   # check the arguments alone: a TypeError inside the constructor is a bug to show
        inspect.signature(builder).bind(num_classes=num_classes, **kwargs)
    except TypeError as exc:
        raise InputError(f'model {name!r}: bad arguments {kwargs}: {exc}') from None
    return builder(num_classes=num_classes, **kwargs)
