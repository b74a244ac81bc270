"""
The networks a :class:`~stkd_ros.inference.Segmenter` runs on, one module per backend.

Each backend is imported only when chosen, so a node on ONNX Runtime or OpenVINO never loads
PyTorch. A backend takes the model input (N, 3, h, w) float32, runs the network (``prepare``
then ``run``: only ``run`` is the model's own doing) and turns its output into NumPy logits,
class ids or probabilities (``logits``, ``argmax``, ``probabilities``). ``precision`` (the
inference precision, 'f32' or 'bf16') is a choice of the OpenVINO backend only.
"""

import importlib

from stkd_ros.errors import InputError


def _backend_module(backend: str, module: str, package: str):
    """Import a backend's module; a missing package is one line naming it."""
    try:
        return importlib.import_module(f'stkd_ros.backends.{module}')
    except ModuleNotFoundError as exc:
        if exc.name != package:
            raise
        raise InputError(f'backend {backend} needs the Python package {package}, which is not '
                         f'installed (pip install -r requirements.txt)') from None


def _fixed_precision(backend: str, precision):
    if precision is not None:
        raise InputError(f'backend {backend} has no precision choice (got {precision!r}); '
                         f'precision is for openvino')


def _torch(path, device, threads, precision):
    _fixed_precision('torch', precision)
    return _backend_module('torch', 'torch_model', 'torch').TorchModel.load(path, device, threads)


def _onnxruntime(path, device, threads, precision):
    _fixed_precision('onnxruntime', precision)
    module = _backend_module('onnxruntime', 'onnx_session', 'onnxruntime')
    return module.OnnxSession.load(path, threads)


def _openvino(path, device, threads, precision):
    module = _backend_module('openvino', 'openvino_model', 'openvino')
    return module.OpenVINOModel.load(path, threads, precision)


#: Backend name -> loader(path, device, threads, precision) returning (backend, metadata).
BACKENDS = {'torch': _torch, 'onnxruntime': _onnxruntime, 'openvino': _openvino}
