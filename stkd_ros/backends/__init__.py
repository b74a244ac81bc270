"""
The networks a :class:`~stkd_ros.inference.Segmenter` runs on, one module per backend.

Each backend is imported only when chosen, so a node on ONNX Runtime never loads PyTorch.
A backend takes the model input (N, 3, h, w) float32, runs the network (``prepare`` then
``run``: only ``run`` is the model's own doing) and turns its output into NumPy logits, class
ids or probabilities (``logits``, ``argmax``, ``probabilities``).
"""


def _torch(path, device, threads):
    from stkd_ros.backends.torch_model import TorchModel
    return TorchModel.load(path, device, threads)


def _onnxruntime(path, device, threads):
    from stkd_ros.backends.onnx_session import OnnxSession
    return OnnxSession.load(path, threads)


#: Backend name -> loader(path, device, threads) returning (backend, metadata).
BACKENDS = {'torch': _torch, 'onnxruntime': _onnxruntime}
