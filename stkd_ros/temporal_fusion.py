"""
Run-time temporal fusion: each frame's class probabilities fused with the stream's past.

One :class:`TemporalFusion` per stream (camera). For frame t, at the model's output size:

- the flow from frame t to frame t-1 (DIS 'fast', as the flicker monitor's, but refined down
  to half the output grid, ``flow_finest_scale`` 1: the preset's own finest level misses an
  object's motion on a grid this small, and the grid itself costs 10 ms a frame) carries
  the fused probabilities of t-1 into t's pixel grid (a backward warp: t's pixel p takes
  what t-1 held at ``p + flow[p]``);
- a pixel takes the carried past only where it passes the photometric check (frame t-1
  carried along the same flow looks like frame t, mean absolute RGB difference below
  ``photometric_threshold``, as the exact-flow check of evaluation) and its flow target lies
  inside the image; elsewhere the fresh prediction stands alone;
- where it does, ``fused = a p_t + (1 - a) carried`` with ``a = w + (1 - w) s c``, ``w`` the
  fresh prediction's least weight (``fresh_weight``), ``c`` its confidence (its top
  probability rescaled so that a uniform guess gives 0 and certainty 1) and ``s``
  (``confidence_weight``) how far that confidence lifts its weight toward 1: a confident
  fresh prediction then overrides the past and an unsure one leans on it. Since ``a >= w``
  the past fades geometrically, so nothing drifts (Deep Feature Flow, CVPR 2017, lost
  accuracy carrying the past alone; NetWarp, ICCV 2017, fused it with the fresh one).

The defaults are issue 45's protocol's pick (experiments/temporal_fusion.py; the figures in
docs/results.md): on the tuning streets, for the default recipe's student, the settings
with the least flicker at no loss of mIoU at each finest DIS level, the level the finest
whose cost per frame stays within 3 ms at 360x480 (level 1: half the output grid; DIS on the
grid itself added 10 ms), and of its settings the first that keeps a moving object's mask
on the object: a constant-ish past (``s`` 0.5) steadied more but left a trail behind a
moving square, because DIS flow bleeds into the background the object uncovers, a smooth
surface passes the colour test there, and the past outweighs a sure fresh prediction
(test_temporal_fusion.py's moving square).

The state starts over (the frame's own prediction is returned, as with fusion off) on the
first frame, a change of frame or output size, a gap in the stamps (or a stamp going back),
and a scene cut: more than ``cut_share`` of the pixels fail the photometric check. Frame t's
result needs only frames up to t: nothing waits for t+1.

NumPy and OpenCV only: the node can run it without PyTorch.
"""

from dataclasses import asdict, dataclass, fields
import logging
import time
from typing import Optional

import cv2
import numpy as np
from stkd_ros.data.classes import resize_classes
from stkd_ros.errors import InputError
from stkd_ros.flow.opencv_flow import DISFlow
from stkd_ros.flow.visible import in_image, targets

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FusionSettings:
    """The stage's knobs (the module's docstring says how the defaults were chosen)."""

    fresh_weight: float = 0.2           # the fresh prediction's least weight (at no confidence)
    confidence_weight: float = 1.0      # how far its confidence lifts that weight toward 1
    photometric_threshold: float = 0.08  # mean |RGB| difference (0..1) of a carried pixel
    cut_share: float = 0.5              # more pixels than this failing the check: a cut
    max_gap_s: float = 0.5              # a larger step between stamps starts over
    flow_preset: str = 'fast'           # DIS preset (the flicker monitor's)
    flow_finest_scale: int = 1          # DIS down to half the output grid (0: the grid itself)

    def __post_init__(self):
        for name in ('fresh_weight', 'confidence_weight', 'photometric_threshold',
                     'cut_share'):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise InputError(f'temporal fusion: {name} must lie in [0, 1], got '
                                 f'{getattr(self, name)}')
        if not self.max_gap_s > 0:
            raise InputError(f'temporal fusion: max_gap_s must be above 0 s, got '
                             f'{self.max_gap_s}')
        if self.flow_finest_scale < 0:
            raise InputError(f'temporal fusion: flow_finest_scale must be 0 or more, got '
                             f'{self.flow_finest_scale}')

    @classmethod
    def parse(cls, items, option: str = '--fusion') -> 'FusionSettings':
        """
        Make settings from ``KEY=VALUE`` strings (keys: the fields), the rest the defaults.

        The one parser of the command line's ``--fusion``: an unknown key, a key given twice
        or a value of the wrong kind is an :class:`InputError` naming ``option`` and the item.
        """
        kinds = {f.name: f.type for f in fields(cls)}
        words = {float: 'a number', int: 'a whole number', str: 'a word'}
        values = {}
        for item in items:
            key, equals, text = (part.strip() for part in item.partition('='))
            if not equals or key not in kinds:
                wrong = f'unknown setting {key!r}' if equals else 'expected KEY=VALUE'
                raise InputError(f'{option} {item}: {wrong}; the settings are '
                                 f'{", ".join(kinds)}')
            if key in values:
                raise InputError(f'{option} {item}: {key} is given twice')
            try:
                values[key] = kinds[key](text)
            except ValueError:
                raise InputError(f'{option} {item}: {key} takes {words[kinds[key]]}, got '
                                 f'{text!r}') from None
        return cls(**values)

    def describe(self) -> str:
        """Name the stage and its settings, for every output that scores fused masks."""
        return ('flow-guided temporal fusion: ' +
                ', '.join(f'{k} {v}' for k, v in asdict(self).items()) +
                ", DIS flow t -> t-1 at the model's output size")


def carry(array: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """
    Sample ``array`` (H, W[, C]) at ``p + flow[p]`` (bilinear; borders replicated).

    With flow from frame t to frame t-1, frame t-1's values land on frame t's pixels. Where the
    target is outside the image the value is the border's: callers mask it with
    :func:`stkd_ros.flow.visible.in_image`.
    """
    map_x, map_y = targets(flow)
    return cv2.remap(array, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def header_seconds(stamp) -> Optional[float]:
    """
    Return a message header's stamp (``sec``, ``nanosec``) in seconds, as the stage takes it.

    None for a zero stamp (a publisher that sets no time): no gap check. segment_node and
    eval-bag both convert here, so a drive's gaps start the state over in both alike.
    """
    if stamp.sec == 0 and stamp.nanosec == 0:
        return None
    return stamp.sec + 1e-9 * stamp.nanosec


class TemporalFusion:
    """
    The fused state of one stream: feed frames in time order with their probabilities.

    ``update(frame, probs, stamp)`` returns the fused probabilities (h, w, K) of this frame;
    :meth:`mask` the class map at the frame's size. ``last_reset`` names why the last frame
    started over (None when it was fused), for logs and tests; ``last_seconds`` how long the
    last :meth:`fused_mask` took (eval-bag's latency of the stage).

    The fused state is kept channels-last, (h, w, K): the layout cv2.remap carries and the
    argmax reduces over its last, contiguous axis, so no frame pays a transposing copy of it.
    """

    def __init__(self, settings: FusionSettings = FusionSettings()):
        self.settings = settings
        self.flow = DISFlow(settings.flow_preset, settings.flow_finest_scale)
        self.reset()

    def reset(self):
        self._prev = None           # (frame shape, small RGB, small gray, fused, stamp)
        self.last_reset = 'first frame'
        self.last_seconds = 0.0

    def update(self, frame: np.ndarray, probs: np.ndarray,
               stamp: Optional[float] = None) -> np.ndarray:
        """
        Fuse frame t's probabilities (K, h, w) with the past; return the fused (h, w, K).

        ``frame`` is HxWx3 uint8 RGB at its own size; ``stamp`` its time in seconds (None:
        no gap check, for frames known to be consecutive). ``probs`` comes as the Segmenter
        gives it; a frame that starts over returns (and keeps) it channels-last.
        """
        if frame.ndim != 3 or frame.shape[2] != 3 or probs.ndim != 3:
            raise InputError(f'temporal fusion needs an HxWx3 frame and (K, h, w) '
                             f'probabilities, got {frame.shape} and {probs.shape}')
        probs = np.ascontiguousarray(probs, np.float32)
        small = cv2.resize(frame, probs.shape[:0:-1], interpolation=cv2.INTER_AREA)
        gray = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY)
        prev, reason = self._prev, self._start_over(frame, probs, stamp)
        fused = None
        if reason is None:
            fused, reason = self._fuse(small, gray, probs, prev)
        if fused is None:       # starts over: the frame's own prediction
            fused = np.ascontiguousarray(probs.transpose(1, 2, 0))
        if reason is not None and prev is not None:
            log.debug('temporal fusion starts over: %s', reason)
        self.last_reset = reason
        self._prev = (frame.shape, small, gray, fused, stamp)
        return fused

    def mask(self, fused: np.ndarray, shape) -> np.ndarray:
        """Fused (h, w, K) -> class ids (H, W uint8) at the frame's size (Segmenter's resize)."""
        return resize_classes(fused.argmax(2).astype(np.uint8), shape[:2])

    def fused_mask(self, frame: np.ndarray, probs: np.ndarray,
                   stamp: Optional[float] = None) -> np.ndarray:
        """:meth:`update` then :meth:`mask`: the frame's fused class ids at its own size."""
        start = time.perf_counter()
        mask = self.mask(self.update(frame, probs, stamp), frame.shape)
        self.last_seconds = time.perf_counter() - start
        return mask

    def _start_over(self, frame, probs, stamp) -> Optional[str]:
        """Why this frame cannot be fused with the state (None: it can)."""
        if self._prev is None:
            return 'first frame'
        shape, _, _, fused, last = self._prev
        if shape != frame.shape or fused.shape != probs.shape[1:] + probs.shape[:1]:
            return f'size changed from {shape[:2]} to {frame.shape[:2]}'
        if stamp is not None and last is not None:
            step = stamp - last
            if not 0 < step <= self.settings.max_gap_s:
                return f'gap of {step:.3f} s between stamps'
        return None

    def _fuse(self, small, gray, probs, prev):
        _, small_prev, gray_prev, fused_prev, _ = prev
        flow = self.flow.on_gray(gray, gray_prev)            # t -> t-1
        carried_frame = carry(small_prev, flow).astype(np.float32)
        error = np.abs(small.astype(np.float32) - carried_frame).mean(2) / 255.0
        valid = in_image(flow) & (error < self.settings.photometric_threshold)
        failing = 1.0 - valid.mean()
        if failing > self.settings.cut_share:
            return None, f'scene cut ({failing:.0%} of pixels fail the check)'
        # (h, w, K) as the state (remap returns one channel as (h, w): K = 1 keeps its axis)
        carried = carry(fused_prev, flow).reshape(fused_prev.shape)
        k, w = probs.shape[0], self.settings.fresh_weight
        confidence = (probs.max(0) - 1.0 / k) / (1.0 - 1.0 / k) if k > 1 else 1.0
        lift = self.settings.confidence_weight * np.clip(confidence, 0.0, 1.0)
        a = np.where(valid, w + (1.0 - w) * lift, 1.0).astype(np.float32, copy=False)
        a = a[..., None]
        # a p + (1 - a) carried, element by element as before; the fresh (K, h, w) is read
        # through a channels-last view, written into the (h, w, K) result, never copied.
        fused = np.multiply(a, probs.transpose(1, 2, 0), out=np.empty_like(carried))
        fused += (1.0 - a) * carried
        return fused, None
