"""
Temporal consistency (TC) and flicker of a segmentation stream: the one definition.

`stkd evaluate`, `stkd eval-bag` and the flicker monitor all count with this module
(docs/architecture.md, "Temporal consistency"); they differ only in the flow and the
occlusion check that goes with it (``stkd_ros.flow.pairs``), which each output names.

For a pair of frames (t, t+1) the mask of t+1 is warped back to t along the flow t -> t+1
(nearest sample). A pixel is *counted* when its flow target lies inside the image, it passes
the occlusion check (``visible``: seen in both frames), and frame t's class is not
``IGNORE_INDEX``. Over the pairs scored, one confusion matrix of (class at t, warped class)
accumulates:

- TC: the mean IoU of that matrix;
- flicker: the share of its pixels off the diagonal (the class changed along the flow).

ETC's published TC (Liu et al. ECCV 2020) counts every in-bounds pixel, occluded ones too (the
occlusion mask is commented out in its evaluation script); it is kept as ``tc_etc`` for
comparison with the literature only.

NumPy only: the flicker monitor stays light.
"""

from typing import NamedTuple, Optional

import numpy as np
from stkd_ros.data.classes import IGNORE_INDEX

#: Class ids a mono8 mask can carry besides IGNORE_INDEX: the matrix size for callers that do
#: not know the model's classes (the monitor). Classes never seen are left out of the mean, so
#: the figures equal those of a matrix sized to the model's classes.
MONO8_CLASSES = 255


class PairCounts(NamedTuple):
    """One pair's confusion counts (rows frame t's class, columns the warped class) and maps."""

    counted: np.ndarray     # (K, K) int64: in-bounds pixels that pass the occlusion check
    in_bounds: np.ndarray   # (K, K) int64: every in-bounds pixel (ETC's published TC)
    scored: np.ndarray      # (H, W) bool: where the counted pixels are
    mask_t: np.ndarray      # (H, W) frame t's classes, and frame t+1's warped to t:
    warped: np.ndarray      # held, not copied, so a pair costs no map nobody asks for

    @property
    def changed(self) -> np.ndarray:
        """(H, W) bool: the counted pixels whose class changed along the flow (flicker's)."""
        return self.scored & (self.warped != self.mask_t)


def warp_mask(mask_next: np.ndarray, flow: np.ndarray):
    """
    Bring ``mask_next`` (H, W) back to frame t along ``flow`` (H, W, 2) from t to t+1.

    Returns the warped mask and a bool (H, W) map of the pixels whose target
    ``p + flow[p]`` lies inside the image (0 .. W-1, 0 .. H-1); elsewhere the warped mask
    holds frame t+1's pixel 0 and must not be counted.
    """
    h, w = mask_next.shape
    x = np.arange(w, dtype=np.float32) + flow[..., 0]
    y = np.arange(h, dtype=np.float32)[:, None] + flow[..., 1]
    inside = (x >= 0) & (x <= w - 1) & (y >= 0) & (y <= h - 1)   # NaN is outside
    # Round half to even, as grid_sample's nearest mode does.
    cols = np.rint(np.where(inside, x, 0)).astype(np.intp)
    rows = np.rint(np.where(inside, y, 0)).astype(np.intp)
    return mask_next[rows, cols], inside


def _warped_and_kept(mask_t, mask_next, flow, num_classes):
    if mask_t.shape != mask_next.shape or flow.shape != mask_t.shape + (2,):
        raise ValueError(f'masks {mask_t.shape}, {mask_next.shape} and flow {flow.shape} '
                         f'do not match')
    warped, kept = warp_mask(mask_next, flow)
    kept &= (mask_t != IGNORE_INDEX) & (mask_t < num_classes) & (warped < num_classes)
    return warped, kept


def _confusion(a: np.ndarray, b: np.ndarray, k: int) -> np.ndarray:
    return np.bincount(a.astype(np.int64) * k + b, minlength=k * k).reshape(k, k)


def compare_masks(mask_t: np.ndarray, mask_next: np.ndarray, flow: np.ndarray,
                  visible: Optional[np.ndarray], num_classes: int) -> PairCounts:
    """
    Count frame t's classes against frame t+1's warped back along ``flow`` (t -> t+1).

    mask_t, mask_next: (H, W) integer class ids. flow: (H, W, 2) float. visible: (H, W) bool
    occlusion mask (True = seen in both frames), or None where the flow comes with no
    occlusion check (then every in-bounds pixel counts). num_classes: pixels with a class id
    at or above it are left out, as :class:`~stkd_ros.metrics.ConfusionMatrix` does.
    """
    warped, kept = _warped_and_kept(mask_t, mask_next, flow, num_classes)
    in_bounds = _confusion(mask_t[kept], warped[kept], num_classes)
    counted = in_bounds
    if visible is not None:
        kept &= visible
        counted = _confusion(mask_t[kept], warped[kept], num_classes)
    return PairCounts(counted, in_bounds, kept, mask_t, warped)


def iou(confusion: np.ndarray) -> np.ndarray:
    """Per-class IoU (float64) of a confusion matrix; NaN for classes absent from both axes."""
    mat = confusion.astype(np.float64)
    tp = np.diag(mat)
    union = mat.sum(0) + mat.sum(1) - tp
    with np.errstate(invalid='ignore', divide='ignore'):
        return np.where(union > 0, tp / np.maximum(union, 1), np.nan)


def mean_iou(confusion: np.ndarray) -> float:
    """Mean IoU over the classes present (NaN when none is); of counted pixels, that is TC."""
    per_class = iou(confusion)
    present = ~np.isnan(per_class)
    return float(per_class[present].mean()) if present.any() else float('nan')


def flicker(confusion: np.ndarray) -> float:
    """Share of counted pixels whose class changed (off the diagonal); NaN when none counted."""
    total = int(confusion.sum())
    return (total - int(np.trace(confusion))) / total if total else float('nan')


class StabilityMeter:
    """
    TC and flicker over a sequence of pairs: one confusion matrix accumulated over them.

    ``add`` returns the pair's own counts, for per-step figures (a monitor's topic, a plot
    over a drive); ``summary`` gives the accumulated ones, which are what every output reports.
    """

    def __init__(self, num_classes: int = MONO8_CLASSES):
        self.num_classes = num_classes
        self.counted = np.zeros((num_classes, num_classes), np.int64)
        self.in_bounds = np.zeros((num_classes, num_classes), np.int64)
        self.pairs = 0

    def add(self, mask_t, mask_next, flow, visible) -> PairCounts:
        """Count one pair (see :func:`compare_masks`) and return its counts."""
        pair = compare_masks(mask_t, mask_next, flow, visible, self.num_classes)
        self.counted += pair.counted
        self.in_bounds += pair.in_bounds
        self.pairs += 1
        return pair

    def tc(self) -> float:
        return mean_iou(self.counted)

    def flicker(self) -> float:
        return flicker(self.counted)

    def summary(self, class_names=None) -> dict:
        """TC, flicker, ETC's TC, the pixels and pairs counted, and TC and flicker per class."""
        names = list(class_names or range(self.num_classes))
        rows = self.counted.sum(1)
        changed = rows - np.diag(self.counted)
        with np.errstate(invalid='ignore', divide='ignore'):
            per_class_flicker = np.where(rows > 0, changed / np.maximum(rows, 1), np.nan)
        return {'tc': self.tc(), 'flicker': self.flicker(), 'tc_etc': mean_iou(self.in_bounds),
                'pixels': int(self.counted.sum()), 'pairs': self.pairs,
                'per_class_tc': dict(zip(map(str, names), iou(self.counted).tolist())),
                'per_class_flicker': dict(zip(map(str, names), per_class_flicker.tolist()))}


def pair_figures(pair: PairCounts) -> dict:
    """One pair's own flicker, TC and pixels counted (NaN figures when none counted)."""
    return {'flicker': flicker(pair.counted), 'tc': mean_iou(pair.counted),
            'pixels': int(pair.counted.sum())}
