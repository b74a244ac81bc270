"""
Online flicker measurement (ROS-free).

Masks are paired with their images, and consecutive masks compared after flow compensation.

For each new (image, mask) pair, flow and its occlusion check are computed from the previous
image to this one (:class:`~stkd_ros.flow.pairs.StreamFlow`, the same as eval-bag's), and the
previous mask is compared with this one along it (:class:`stkd_ros.temporal.StabilityMeter`).
Each step's own flicker and TC go to the monitor's topics; the running totals, one confusion
matrix over every step since the start, are what eval-bag reports for the same stream.
"""

from collections import deque, OrderedDict
import csv
from pathlib import Path

import numpy as np

from stkd_ros.flow.pairs import StreamFlow
from stkd_ros.temporal import pair_figures, StabilityMeter


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
    """Feed matched (image, mask) pairs in time order; get per-step and running figures."""

    def __init__(self, window: int = 100, stream: StreamFlow = None, log_path=None):
        self.flow = stream or StreamFlow()
        self.total = StabilityMeter()
        self.window = deque(maxlen=window)
        self.prev_mask = None
        self._csv = None
        if log_path:
            path = Path(log_path)
            path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(path, 'w', newline='')
            self._csv = csv.writer(self._file)
            self._csv.writerow(['stamp', 'flicker', 'tc', 'pixels', 'flicker_total',
                                'tc_total'])

    @property
    def description(self) -> str:
        return self.flow.description

    def update(self, stamp, image: np.ndarray, mask: np.ndarray):
        """Add the next frame; returns this step's figures (None for the first frame)."""
        motion = self.flow.update(image)
        prev, self.prev_mask = self.prev_mask, self.flow.shrink(mask, nearest=True)
        if motion is None or prev is None:
            return None
        result = pair_figures(self.total.add(prev, self.prev_mask, *motion))
        if result['pixels']:
            self.window.append(result['flicker'])
        if self._csv is not None:
            self._csv.writerow([stamp, f'{result["flicker"]:.6f}', f'{result["tc"]:.6f}',
                                result['pixels'], f'{self.total.flicker():.6f}',
                                f'{self.total.tc():.6f}'])
        return result

    def summary(self) -> dict:
        """Return the running totals since the start, and the last ``window`` steps' flicker."""
        out = {'steps': self.total.pairs, 'flicker': self.total.flicker(),
               'tc': self.total.tc(), 'flow': self.description}
        if self.window:
            recent = np.array(self.window)
            out.update({'flicker_window_mean': float(recent.mean()),
                        'flicker_window_p95': float(np.percentile(recent, 95))})
        return out

    def close(self):
        if self._csv is not None:
            self._file.close()
            self._csv = None
