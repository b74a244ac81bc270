"""What the backends that run an ONNX export share: opening it with its metadata, NumPy out."""

from pathlib import Path

import numpy as np
from stkd_ros.model_meta import ModelFileError, parse_metadata


def open_onnx(path, read):
    """
    Open the ONNX export at ``path`` with ``read(str_path) -> (handle, raw metadata or None)``.

    Returns (handle, the stkd metadata it carries), checked as a model file's is, so every
    ONNX backend accepts and refuses the same files with the same words.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f'ONNX model not found: {path}')
    try:
        handle, raw = read(str(path))
    except Exception as exc:
        raise ModelFileError(f'{path} is not a readable ONNX model: {_reason(exc)}') from None
    if raw is None:
        raise ModelFileError(f'{path} has no stkd metadata; export it with `stkd export`')
    return handle, parse_metadata(path, raw)


def _reason(exc) -> str:
    # The last line says what is wrong (OpenVINO's first lines name its own source files).
    lines = [s.strip() for s in str(exc).splitlines() if s.strip()]
    return lines[-1] if lines else type(exc).__name__


class NumpyOutputs:
    """The output of an ONNX backend: NumPy logits (N, K, h, w) float32, post-processed here."""

    def prepare(self, x: np.ndarray) -> np.ndarray:
        return x

    def logits(self, out: np.ndarray) -> np.ndarray:
        return out

    def argmax(self, out: np.ndarray) -> np.ndarray:
        return out.argmax(1).astype(np.uint8)

    def probabilities(self, out: np.ndarray) -> np.ndarray:
        e = np.exp(out - out.max(1, keepdims=True))
        return (e / e.sum(1, keepdims=True)).astype(np.float32)
