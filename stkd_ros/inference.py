"""
Segmenter: load a model file and segment frames; the one pre- and post-processing path.

No ROS here: the nodes, eval-bag and offline evaluation (``stkd evaluate``, the trainer's
validation) all segment through a :class:`Segmenter`, so a node publishes exactly the masks
that evaluation scores (test/test_export_inference.py checks it).

- In: the frame is resized to the model's input size with OpenCV's bilinear resize on uint8
  and normalized as ``(x / 255 - mean) / std``: what ``stkd_ros.data.transforms`` does to the
  training frames (``RandomScale``'s resize, ``ToTensor``), so the model sees what it was
  trained on (test/test_export_inference.py compares them).
- Out: the argmax of the logits at the model's size, resized to the frame's size with
  nearest-neighbour interpolation at pixel centres (the masks' contract, shared/DESIGN.md;
  ``resize_classes``): class ids are never mixed, the mask lies on the frame's pixels, and
  at 1080p it costs about 1 ms where bilinear logits cost 20 ms or more.
- With a stream's :class:`~stkd_ros.temporal_fusion.TemporalFusion` (off unless one is
  passed), the argmax is taken of the class probabilities at the model's size fused with the
  stream's past, then resized the same way; without one the masks are the per-frame masks,
  bit for bit. :meth:`Segmenter.per_frame_and_fused_masks` is that one path: it gives both
  from one forward pass (eval-bag scores both), and segment/segment_batch take theirs from it.

A model file whose network raises while it runs (its forward, the ONNX session) raises
:class:`ModelRunError`, an input error that the command line states in one line; an error
anywhere else on the path (preprocessing, postprocessing) is this package's bug and keeps its
traceback.

The network runs on a backend (``stkd_ros.backends``), imported only when chosen: with
``onnxruntime`` or ``openvino`` nothing here loads PyTorch.
"""

import cv2
import numpy as np
from stkd_ros.backends import BACKENDS
from stkd_ros.data.classes import palette_lut, resize_classes
from stkd_ros.errors import InputError


class ModelRunError(InputError):
    """
    A model file's network that raised on an input: the model's fault, not this package's.

    ``reason`` is what the network said (exception type and first line), for callers that
    add where it happened (eval-bag names the frame).
    """

    def __init__(self, message: str, reason: str):
        super().__init__(message)
        self.reason = reason


def model_input(frames: np.ndarray, size, mean, std) -> np.ndarray:
    """(N, H, W, 3) uint8 RGB -> (N, 3, h, w) float32 at ``size`` (h, w), normalized."""
    h, w = size
    if frames.shape[1:3] != (h, w):
        frames = np.stack([cv2.resize(f, (w, h), interpolation=cv2.INTER_LINEAR)
                           for f in frames])
    mean = np.asarray(mean, np.float32)
    std = np.asarray(std, np.float32)
    x = (frames.astype(np.float32) / 255.0 - mean) / std
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


class Segmenter:
    """
    A model ready to segment frames of any size (PyTorch, ONNX Runtime or OpenVINO backend).

    Built from a model file (``Segmenter(path)``: the nodes, ``stkd evaluate``, eval-bag) or
    from a module in memory (:meth:`from_module`: validation during training); both take the
    same path from frame to mask. ``segment(frame)`` takes an HxWx3 uint8 RGB frame and
    returns the HxW uint8 class map at the frame's size, with :func:`model_input` and
    ``resize_classes``; ``segment_batch`` does the same for frames of several cameras in one
    forward pass. ``colorize`` and ``overlay`` draw a map with the model's palette. ``meta``
    is the model file's metadata. ``input_size`` overrides the model's (height, width).
    ``precision`` is OpenVINO's inference precision ('bf16' or 'f32'; None: bf16 where the CPU
    has it); ``self.precision`` says what the backend runs at.
    """

    def __init__(self, model_path, *, backend: str = 'torch', device: str = 'cpu',
                 threads: int = 0, onnx_path=None, input_size=None, precision=None):
        if backend not in BACKENDS:
            raise InputError(f'unknown backend {backend!r}; expected one of '
                             f'{tuple(BACKENDS)}')
        self.source = str(model_path if backend == 'torch' else onnx_path or model_path)
        self._net, meta = BACKENDS[backend](self.source, device, threads, precision)
        self._setup(backend, device, meta, input_size)

    @classmethod
    def from_module(cls, model, meta: dict, device='cpu', input_size=None) -> 'Segmenter':
        """
        Wrap a PyTorch module that is already built (and trained) in memory.

        ``meta`` holds what a model file's metadata holds (classes, palette, input_size,
        mean, std). The module runs as it is: put it in eval mode first.
        """
        from stkd_ros.backends.torch_model import TorchModel   # the caller has torch loaded
        segmenter = cls.__new__(cls)
        segmenter._net = TorchModel(model, device)
        segmenter.source = None   # built by the package: whatever it raises is a bug
        segmenter._setup('torch', device, meta, input_size)
        return segmenter

    def _setup(self, backend, device, meta, input_size):
        self.backend, self.device, self.meta = backend, device, meta
        self.precision = self._net.precision
        self.input_size = tuple(input_size or meta['input_size'])
        if len(self.input_size) != 2 or min(self.input_size) < 16:
            raise InputError(f'input size must be (height, width) >= 16, got {input_size}')
        # Checked here, once, so that a bad file is named at load and never fails per frame.
        if any(np.shape(meta[k]) != (3,) for k in ('mean', 'std')):
            raise InputError(f'{self.source or "model"}: normalization mean and std need one '
                             f'value per channel (R, G, B), got {meta["mean"]} and '
                             f'{meta["std"]}')
        self.lut = palette_lut(np.array(meta['palette'], np.uint8))

    @property
    def classes(self):
        return self.meta['classes']

    def preprocess(self, frame: np.ndarray) -> np.ndarray:
        """HxWx3 uint8 RGB -> (1, 3, h, w) float32 normalized at the model's input size."""
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            raise InputError(f'expected an HxWx3 uint8 RGB frame, got {frame.dtype} '
                             f'{frame.shape}')
        return model_input(frame[None], self.input_size, self.meta['mean'], self.meta['std'])

    def _network(self, x: np.ndarray):
        """
        Run the network itself on the model input ``x``; return its output (backend's own).

        Only this call is the model's own doing: a model file whose network raises here gets
        :class:`ModelRunError`. A module built in memory (:meth:`from_module`) is the
        package's: what it raises propagates unchanged.
        """
        x = self._net.prepare(x)
        try:
            return self._net.run(x)
        except Exception as exc:
            if self.source is None:
                raise
            said = str(exc).strip()
            reason = type(exc).__name__ + (f': {said.splitlines()[0]}' if said else '')
            raise ModelRunError(f'model {self.source} failed on a {x.shape[2]}x{x.shape[3]} '
                                f'input: {reason}', reason) from exc

    def logits(self, x: np.ndarray) -> np.ndarray:
        """(N, 3, h, w) model input -> (N, K, h, w) float32 logits."""
        return self._net.logits(self._network(x))

    def argmax(self, x: np.ndarray) -> np.ndarray:
        """(N, 3, h, w) model input -> (N, h, w) uint8 class ids at the model's size."""
        return self._net.argmax(self._network(x))

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        """Return the softmax of the logits: (N, 3, h, w) model input -> (N, K, h, w) float32."""
        return self._net.probabilities(self._network(x))

    def segment(self, frame: np.ndarray, fusion=None, stamp=None) -> np.ndarray:
        """
        Class ids (HxW uint8) at the frame's own size.

        ``fusion``: the stream's :class:`~stkd_ros.temporal_fusion.TemporalFusion`, fed this
        frame and its ``stamp`` (seconds); None (the default) segments the frame alone.
        """
        return self.segment_batch([frame], None if fusion is None else [fusion], [stamp])[0]

    def segment_batch(self, frames, fusions=None, stamps=None) -> list:
        """
        Class ids of each frame (any sizes) at its own size, from one forward pass.

        ``fusions``: one :class:`~stkd_ros.temporal_fusion.TemporalFusion` per frame (its
        camera's), with ``stamps``; None segments each frame alone.
        """
        if fusions is None:
            return [alone for alone, _ in self.per_frame_and_fused_masks(frames)]
        return [fused for _, fused in self.per_frame_and_fused_masks(
            frames, fusions, stamps, per_frame=False)]

    def per_frame_and_fused_masks(self, frames, fusions=None, stamps=None, *,
                                  per_frame: bool = True) -> list:
        """
        Each frame's (per-frame mask, fused mask), class ids at its own size, one forward pass.

        The one path from frames to masks (segment_node, eval-bag, evaluation). The per-frame
        mask is the argmax of the network's output: that of the probabilities the fusion
        takes, and what :meth:`segment` gives with fusion off, bit for bit. ``fusions``: one
        :class:`~stkd_ros.temporal_fusion.TemporalFusion` per frame (its stream's), fed the
        frame, its probabilities and its stamp from ``stamps`` (seconds; None: no gap
        check); without them the fused mask is None. ``per_frame=False`` (only with
        ``fusions``) skips the per-frame masks (None), for a caller that publishes the fused.
        """
        # One camera's frame goes in as it is: concatenating a single input would copy it.
        x = (self.preprocess(frames[0]) if len(frames) == 1
             else np.concatenate([self.preprocess(f) for f in frames]))
        out = self._network(x)
        alone = [None] * len(frames)
        if per_frame or fusions is None:
            alone = [resize_classes(c, f.shape[:2]) for c, f in zip(self._net.argmax(out), frames)]
        if fusions is None:
            return [(a, None) for a in alone]
        stamps = [None] * len(frames) if stamps is None else stamps
        if not len(fusions) == len(stamps) == len(frames):
            raise ValueError(f'{len(frames)} frames, {len(fusions)} fusion states and '
                             f'{len(stamps)} stamps')
        fused = [fusion.fused_mask(f, p, stamp) for f, p, fusion, stamp
                 in zip(frames, self._net.probabilities(out), fusions, stamps)]
        return list(zip(alone, fused))

    def colorize(self, classes: np.ndarray) -> np.ndarray:
        return self.lut[classes]

    def overlay(self, frame: np.ndarray, classes: np.ndarray, alpha: float = 0.5) -> np.ndarray:
        return cv2.addWeighted(frame, 1.0 - alpha, self.colorize(classes), alpha, 0.0)
