"""The ONNX Runtime backend (CPU): an exported model, its metadata from the ONNX file itself."""

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
from stkd_ros.model_meta import KEY, ModelFileError


class OnnxSession:
    """An ONNX Runtime session of a model from ``stkd export`` (input ``image``)."""

    def __init__(self, session):
        self.session = session

    @classmethod
    def load(cls, path, threads: int = 0):
        """Open the ONNX file at ``path``; returns (backend, the stkd metadata it carries)."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f'ONNX model not found: {path}')
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
        try:
            session = ort.InferenceSession(str(path), opts,
                                           providers=['CPUExecutionProvider'])
        except Exception as exc:
            raise ModelFileError(f'{path} is not a readable ONNX model: '
                                 f'{str(exc).splitlines()[0]}') from None
        meta = session.get_modelmeta().custom_metadata_map.get(KEY)
        if meta is None:
            raise ModelFileError(f'{path} has no stkd metadata; export it with `stkd export`')
        return cls(session), json.loads(meta)

    def prepare(self, x: np.ndarray) -> np.ndarray:
        return x

    def run(self, x: np.ndarray) -> np.ndarray:
        return self.session.run(None, {'image': x})[0]

    def logits(self, out: np.ndarray) -> np.ndarray:
        return out

    def argmax(self, out: np.ndarray) -> np.ndarray:
        return out.argmax(1).astype(np.uint8)

    def probabilities(self, out: np.ndarray) -> np.ndarray:
        e = np.exp(out - out.max(1, keepdims=True))
        return (e / e.sum(1, keepdims=True)).astype(np.float32)
