"""
Online flicker measurement (ROS-free).

Masks are paired with their images, and consecutive masks compared after flow compensation.

For each new (image, mask) pair, flow is computed from the previous image to this one with
DIS; the previous mask is compared with this mask sampled along the flow. Flicker is the share
of flow-valid pixels whose class changed; TC is the mIoU between the two (DESIGN.md).
"""

from collections import deque, OrderedDict
import csv
from pathlib import Path

import cv2
import numpy as np

from stkd_ros.flow.warp import warp_numpy

_OUTSIDE = 254   # marks samples from outside the image (255 is 'unlabeled')


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


def pair_metrics(prev_mask: np.ndarray, mask: np.ndarray, flow: np.ndarray) -> dict:
    """Flicker and TC between consecutive masks; flow from the previous frame to this one."""
    warped = warp_numpy(mask, flow, nearest=True, border_value=_OUTSIDE)
    valid = (warped != _OUTSIDE) & (prev_mask != 255)
    counted = int(valid.sum())
    if counted == 0:
        return {'flicker': float('nan'), 'tc': float('nan'), 'pixels': 0}
    a, b = prev_mask[valid].astype(np.int64), warped[valid].astype(np.int64)
    k = int(max(a.max(), b.max())) + 1
    conf = np.bincount(a * k + b, minlength=k * k).reshape(k, k)
    tp = np.diag(conf)
    union = conf.sum(0) + conf.sum(1) - tp
    present = union > 0
    return {'flicker': float((a != b).mean()), 'tc': float((tp[present] / union[present]).mean()),
            'pixels': counted}


class FlickerMeter:
    """Feed matched (image, mask) pairs in time order; get per-step and windowed figures."""

    def __init__(self, window: int = 100, max_side: int = 480, log_path=None):
        self.dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST)
        self.window = deque(maxlen=window)
        self.max_side = max_side
        self.prev = None
        self._csv = None
        if log_path:
            path = Path(log_path)
            path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(path, 'w', newline='')
            self._csv = csv.writer(self._file)
            self._csv.writerow(['stamp', 'flicker', 'tc', 'pixels'])

    def _small(self, image, mask):
        """Work at most ``max_side`` wide: flow and comparison cost scale with pixels."""
        h, w = mask.shape
        scale = min(1.0, self.max_side / max(h, w))
        if scale < 1.0:
            size = (max(1, round(w * scale)), max(1, round(h * scale)))
            image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
            mask = cv2.resize(mask, size, interpolation=cv2.INTER_NEAREST)
        gray = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        return np.ascontiguousarray(gray), np.ascontiguousarray(mask)

    def update(self, stamp, image: np.ndarray, mask: np.ndarray):
        """Add the next frame; returns this step's metrics (None for the first frame)."""
        gray, small = self._small(image, mask)
        prev, self.prev = self.prev, (gray, small)
        if prev is None or prev[0].shape != gray.shape:
            return None
        flow = self.dis.calc(prev[0], gray, None)
        result = pair_metrics(prev[1], small, flow)
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
