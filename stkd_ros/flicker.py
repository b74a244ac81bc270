"""
Online flicker measurement (ROS-free).

Masks are paired with their images, and consecutive masks compared after flow compensation.

For each new (image, mask) pair, flow is computed from the previous image to this one
(:class:`~stkd_ros.flow.stream.StreamFlow`, the same as eval-bag's); the previous mask is
compared with this mask sampled along the flow (:func:`stkd_ros.temporal.pair_metrics`).
Flicker is the share of flow-valid pixels whose class changed; TC is the mIoU between the two
(DESIGN.md).
"""

from collections import deque, OrderedDict
import csv
from pathlib import Path

import numpy as np

from stkd_ros.flow.stream import StreamFlow
from stkd_ros.temporal import pair_metrics


class StampPairer:
    """Match images and masks by header stamp; keeps a few unmatched of each."""

    def __init__(self, keep: int = 30):
        self.images, self.masks, self.keep = OrderedDict(), OrderedDict(), keep

    def _add(self, store, other, stamp, item):
        if stamp in other:
            return (other.pop(stamp), item) if store is self.masks else (item, other.pop(stamp))
        store[stamp] = item
        while len(store) > self.keep:
            store.popitem(last=False)
        return None

    def add_image(self, stamp, image):
        """Return (image, mask) when the mask with this stamp arrived first, else None."""
        return self._add(self.images, self.masks, stamp, image)

    def add_mask(self, stamp, mask):
        """Return (image, mask) when the image with this stamp arrived first, else None."""
        return self._add(self.masks, self.images, stamp, mask)


class FlickerMeter:
    """Feed matched (image, mask) pairs in time order; get per-step and windowed figures."""

    def __init__(self, window: int = 100, max_side: int = 480, log_path=None):
        self.flow = StreamFlow(max_side)
        self.window = deque(maxlen=window)
        self.prev_mask = None
        self._csv = None
        if log_path:
            path = Path(log_path)
            path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(path, 'w', newline='')
            self._csv = csv.writer(self._file)
            self._csv.writerow(['stamp', 'flicker', 'tc', 'pixels'])

    def update(self, stamp, image: np.ndarray, mask: np.ndarray):
        """Add the next frame; returns this step's metrics (None for the first frame)."""
        flow = self.flow.update(image)
        prev, self.prev_mask = self.prev_mask, self.flow.shrink(mask, nearest=True)
        if flow is None:
            return None
        result = pair_metrics(prev, self.prev_mask, flow)
        if result['pixels']:
            self.window.append(result)
        if self._csv is not None:
            self._csv.writerow([stamp, f'{result["flicker"]:.6f}', f'{result["tc"]:.6f}',
                                result['pixels']])
        return result

    def summary(self) -> dict:
        if not self.window:
            return {'steps': 0}
        flick = np.array([r['flicker'] for r in self.window])
        tc = np.array([r['tc'] for r in self.window])
        return {'steps': len(flick), 'flicker_mean': float(flick.mean()),
                'flicker_p95': float(np.percentile(flick, 95)), 'tc_mean': float(tc.mean())}

    def close(self):
        if self._csv is not None:
            self._file.close()
            self._csv = None
