"""
The flow a stability figure is measured with, and the occlusion check that goes with it.

`stkd evaluate`, `stkd eval-bag` and the flicker monitor count TC and flicker the same way
(``stkd_ros.temporal``); what differs between them is the flow, and with it the occlusion
check, and every output names both (``description``):

- the synthetic world's exact flow, with the photometric check (colour constancy along the
  flow): the exact backward field is not at hand, and exact flow keeps flow error out of the
  figure;
- an estimator (DIS, Farneback, RAFT) run both ways, with the forward-backward check, on
  frames shrunk to at most ``max_side`` pixels (masks are compared at that size too).
"""

from typing import Optional

import cv2
import numpy as np
from stkd_ros.data.classes import resize_classes
from stkd_ros.flow.base import build_flow
from stkd_ros.flow.visible import forward_backward_visible, photometric_visible

#: The photometric check of exact flow in evaluation: mean absolute RGB difference (0..1)
#: below which a pixel counts as seen in both frames. Every recorded evaluation used it.
EXACT_FLOW_THRESHOLD = 0.08


class PairFlow:
    """Flow between two frames and where it can be trusted (``visible``), at a working size."""

    def __init__(self, method: str = 'dis', max_side: Optional[int] = None, **settings):
        self.estimator = build_flow(method, **settings)
        self.exact = method == 'ground_truth'
        self.max_side = None if self.exact else max_side

    @classmethod
    def for_streams(cls, max_side: int = None) -> 'PairFlow':
        """Build the flow of eval-bag and the flicker monitor (``STREAM_PRESET``, at most 480)."""
        return cls('dis', max_side or STREAM_MAX_SIDE, preset=STREAM_PRESET)

    @property
    def description(self) -> str:
        """Name the flow and its occlusion check, for every output that reports TC or flicker."""
        if self.exact:
            return (f'exact flow (synthetic world), photometric occlusion check '
                    f'({EXACT_FLOW_THRESHOLD})')
        size = f' at <= {self.max_side} px' if self.max_side else ' at full size'
        return f'{self.estimator.key()}{size}, forward-backward occlusion check'

    def working_size(self, shape) -> tuple:
        """Return (width, height) at which a frame of ``shape`` is compared."""
        h, w = shape[:2]
        scale = min(1.0, self.max_side / max(h, w)) if self.max_side else 1.0
        return (w, h) if scale == 1.0 else (max(1, round(w * scale)), max(1, round(h * scale)))

    def shrink(self, array: np.ndarray, nearest: bool = False) -> np.ndarray:
        """Resize to the working size: flow and comparison cost scale with pixels."""
        size = self.working_size(array.shape)
        if size == array.shape[1::-1]:
            return array
        if nearest:     # masks: on the grid the frames are shrunk to (resize_classes)
            return np.ascontiguousarray(resize_classes(array, size[::-1]))
        return np.ascontiguousarray(cv2.resize(array, size, interpolation=cv2.INTER_AREA))

    def pair(self, frame_a: np.ndarray, frame_b: np.ndarray):
        """
        Flow a -> b (h, w, 2) and the visible pixels (h, w) bool, at the working size.

        Frames are HxWx3 uint8 RGB at their own size; compare masks after :meth:`shrink`
        (``nearest=True``).
        """
        return self.between_small(self.shrink(frame_a), self.shrink(frame_b))

    def between_small(self, a: np.ndarray, b: np.ndarray):
        """:meth:`pair` of frames already at the working size (:meth:`shrink`)."""
        forward, backward = self.estimator.both_ways(a, b)
        return forward, forward_backward_visible(forward, backward)

    def between(self, clip, i: int, j: int):
        """Flow from frame i to frame j of a clip and its visible pixels (see :meth:`pair`)."""
        if not self.exact:
            return self.pair(clip.frames[i], clip.frames[j])
        flow = self.estimator.between(clip, i, j)
        return flow, photometric_visible(clip.frames[i], clip.frames[j], flow,
                                         EXACT_FLOW_THRESHOLD)


#: Flow for streams (eval-bag, the flicker monitor): DIS 'fast' has a lower end-point error
#: than 'ultrafast' for about 1 ms more per frame at 256x512 (bench/flow.py), small next to
#: segmentation; 'medium' costs some 30 ms, too much for a monitor that keeps up with a camera.
STREAM_PRESET = 'fast'
STREAM_MAX_SIDE = 480


class StreamFlow:
    """Feed frames in time order; each gives the flow from the frame before and its check."""

    def __init__(self, pair_flow: Optional[PairFlow] = None):
        self.flow = pair_flow or PairFlow.for_streams()
        self.prev = None

    @property
    def description(self) -> str:
        return self.flow.description

    def shrink(self, array: np.ndarray, nearest: bool = False) -> np.ndarray:
        return self.flow.shrink(array, nearest)

    def update(self, frame: np.ndarray):
        """
        Take the next frame (HxWx3 RGB, or HxW grey); return (flow, visible) from the one before.

        None for the first frame and after a change of frame size.
        """
        if frame.ndim == 2:
            frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2RGB)   # DIS converts back exactly
        # Each frame is shrunk once and kept so, for this step and the next; two sizes can
        # shrink to one, so the full size is what must match.
        small = self.flow.shrink(frame)
        prev, self.prev = self.prev, (frame.shape, small)
        if prev is None or prev[0] != frame.shape:
            return None
        return self.flow.between_small(prev[1], small)
