"""
Flow between consecutive frames of an image stream, as the flicker monitor and eval-bag use it.

Both measure the same thing (flicker and TC of a model's masks along a drive), so they share
this one estimator, preset and working size: a recorded drive scored by ``stkd eval-bag``
and the same drive replayed through ``flicker_monitor`` give comparable figures.
"""

from typing import Optional

import cv2
import numpy as np
from stkd_ros.flow.base import build_flow

#: DIS preset for streams: 'fast' has a lower end-point error than 'ultrafast' for about 1 ms
#: more per frame at 256x512 (bench/flow.py), still small next to segmentation itself;
#: 'medium' costs some 30 ms, too much for a monitor that keeps up with a camera.
STREAM_PRESET = 'fast'


class StreamFlow:
    """Feed frames in time order; each gives the flow from the frame before, at most max_side."""

    def __init__(self, max_side: int = 480, preset: str = STREAM_PRESET):
        self.estimator = build_flow('dis', preset=preset)
        self.max_side = max_side
        self.prev = None

    def working_size(self, shape) -> tuple:
        """Return (width, height) at which a frame of ``shape`` is compared."""
        h, w = shape[:2]
        scale = min(1.0, self.max_side / max(h, w))
        return (w, h) if scale == 1.0 else (max(1, round(w * scale)), max(1, round(h * scale)))

    def shrink(self, array: np.ndarray, nearest: bool = False) -> np.ndarray:
        """Resize to the working size: flow and comparison cost scale with pixels."""
        size = self.working_size(array.shape)
        if size == array.shape[1::-1]:
            return array
        interpolation = cv2.INTER_NEAREST if nearest else cv2.INTER_AREA
        return np.ascontiguousarray(cv2.resize(array, size, interpolation=interpolation))

    def update(self, frame: np.ndarray) -> Optional[np.ndarray]:
        """
        Take the next frame (HxWx3 RGB, or HxW grey); return the flow from the frame before.

        The flow is (h, w, 2) at the working size; None for the first frame and after a
        change of frame size. Compare masks with it after :meth:`shrink` (``nearest=True``).
        """
        if frame.ndim == 2:
            frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2RGB)   # DIS converts back exactly
        small = self.shrink(frame)
        prev, self.prev = self.prev, small
        if prev is None or prev.shape != small.shape:
            return None
        return self.estimator(prev, small)
