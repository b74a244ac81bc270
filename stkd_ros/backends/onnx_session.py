"""The ONNX Runtime backend (CPU): an exported model, its metadata from the ONNX file itself."""

import numpy as np
import onnxruntime as ort
from stkd_ros.backends.onnx_file import NumpyOutputs, open_onnx
from stkd_ros.model_meta import KEY


class OnnxSession(NumpyOutputs):
    """An ONNX Runtime session of a model from ``stkd export`` (input ``image``)."""

    precision = 'f32'   # ONNX Runtime's CPU provider computes float ops in float32

    def __init__(self, session):
        self.session = session

    @classmethod
    def load(cls, path, threads: int = 0):
        """Open the ONNX file at ``path``; returns (backend, the stkd metadata it carries)."""
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads

        def read(file):
            session = ort.InferenceSession(file, opts, providers=['CPUExecutionProvider'])
            return session, session.get_modelmeta().custom_metadata_map.get(KEY)

        session, meta = open_onnx(path, read)
        return cls(session), meta

    def run(self, x: np.ndarray) -> np.ndarray:
        return self.session.run(None, {'image': x})[0]
