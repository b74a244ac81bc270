"""
Segmenter: load a model file and segment frames, with exactly the training preprocessing.

No ROS here: the nodes call this. A frame of any size (HxWx3 uint8 RGB) is resized to the
model's input size, normalized with the model's mean/std, segmented, and the class map is
resized back to the frame's size with nearest-neighbour interpolation.
"""

import json
from pathlib import Path

import cv2
import numpy as np
from stkd_ros.data.classes import palette_lut
from stkd_ros.model_file import load_model_file, ModelFileError
import torch

BACKENDS = ('torch', 'onnxruntime')


class Segmenter:
    def __init__(self, model_path, *, backend: str = 'torch', device: str = 'cpu',
                 threads: int = 0, onnx_path=None, input_size=None):
        if backend not in BACKENDS:
            raise ValueError(f'unknown backend {backend!r}; expected one of {BACKENDS}')
        self.backend, self.device = backend, torch.device(device)
        if threads:
            torch.set_num_threads(threads)
        if backend == 'torch':
            self.model, self.meta = load_model_file(model_path, self.device)
        else:
            self._session, self.meta = _onnx_session(onnx_path or model_path, threads)
        self.input_size = tuple(input_size or self.meta['input_size'])
        if len(self.input_size) != 2 or min(self.input_size) < 16:
            raise ValueError(f'input size must be (height, width) >= 16, got {input_size}')
        self.mean = np.array(self.meta['mean'], np.float32) * 255.0
        self.inv_std = 1.0 / (np.array(self.meta['std'], np.float32) * 255.0)
        self.lut = palette_lut(np.array(self.meta['palette'], np.uint8))

    @property
    def classes(self):
        return self.meta['classes']

    def preprocess(self, frame: np.ndarray) -> np.ndarray:
        """HxWx3 uint8 RGB -> (1, 3, h, w) float32 normalized at the model's input size."""
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            raise ValueError(f'expected an HxWx3 uint8 RGB frame, got {frame.dtype} '
                             f'{frame.shape}')
        h, w = self.input_size
        if frame.shape[:2] != (h, w):
            frame = cv2.resize(frame, (w, h), interpolation=cv2.INTER_LINEAR)
        x = (frame.astype(np.float32) - self.mean) * self.inv_std
        return np.ascontiguousarray(x.transpose(2, 0, 1)[None])

    def logits(self, x: np.ndarray) -> np.ndarray:
        if self.backend == 'torch':
            with torch.inference_mode():
                out = self.model(torch.from_numpy(x).to(self.device))['logits']
            return out.float().cpu().numpy()
        return self._session.run(None, {'image': x})[0]

    def segment(self, frame: np.ndarray) -> np.ndarray:
        """Class ids (HxW uint8) at the frame's own size."""
        classes = self.logits(self.preprocess(frame))[0].argmax(0).astype(np.uint8)
        h, w = frame.shape[:2]
        if classes.shape != (h, w):
            classes = cv2.resize(classes, (w, h), interpolation=cv2.INTER_NEAREST)
        return classes

    def colorize(self, classes: np.ndarray) -> np.ndarray:
        return self.lut[classes]

    def overlay(self, frame: np.ndarray, classes: np.ndarray, alpha: float = 0.5) -> np.ndarray:
        return cv2.addWeighted(frame, 1.0 - alpha, self.colorize(classes), alpha, 0.0)


def _onnx_session(path, threads: int):
    import onnxruntime as ort
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f'ONNX model not found: {path}')
    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
    try:
        session = ort.InferenceSession(str(path), opts, providers=['CPUExecutionProvider'])
    except Exception as exc:
        raise ModelFileError(f'{path} is not a readable ONNX model: '
                             f'{str(exc).splitlines()[0]}') from None
    meta = session.get_modelmeta().custom_metadata_map.get('stkd')
    if meta is None:
        raise ModelFileError(f'{path} has no stkd metadata; export it with `stkd export`')
    return session, json.loads(meta)
