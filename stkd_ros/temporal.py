"""
TC and flicker of two consecutive masks given the flow between them: the one definition.

Offline evaluation (:class:`stkd_ros.metrics.TemporalConsistency`), eval-bag and the flicker
monitor all count with :func:`compare_masks`, so their figures mean the same thing
(docs/architecture.md, "Metric definitions"):

- the mask of frame t+1 is warped back to frame t along the flow t -> t+1, nearest sample;
  a pixel counts when its flow target lies inside the image (the test the temporal loss uses,
  ``stkd_ros.flow.warp.in_bounds``) and frame t's class is not ``IGNORE_INDEX``;
- TC is the mIoU between frame t's mask and the warped mask; flicker is the share of
  counted pixels whose class changed; the occlusion-masked variants count only the pixels that
  also pass an occlusion check (``valid``).

NumPy only (no torch), so the flicker monitor stays light.
"""

from typing import NamedTuple, Optional

import numpy as np
from stkd_ros.data.classes import IGNORE_INDEX
from stkd_ros.errors import InputError


class MaskPair(NamedTuple):
    """Confusion counts of one pair: rows frame t's class, columns the warped class."""

    in_bounds: np.ndarray   # (K, K) int64 over pixels whose flow target is inside the image
    visible: np.ndarray     # (K, K) int64 over those that also pass the occlusion check


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


def _confusion(a: np.ndarray, b: np.ndarray, k: int) -> np.ndarray:
    return np.bincount(a * k + b, minlength=k * k).reshape(k, k)


def compare_masks(mask_t: np.ndarray, mask_next: np.ndarray, flow: np.ndarray,
                  valid: Optional[np.ndarray] = None,
                  num_classes: Optional[int] = None) -> MaskPair:
    """
    Count frame t's classes against frame t+1's warped back along ``flow`` (t -> t+1).

    mask_t, mask_next: (H, W) integer class ids. flow: (H, W, 2) float. valid: optional
    (H, W) bool occlusion mask (True = visible in both frames); None counts every in-bounds
    pixel as visible. num_classes: pixels with a class id at or above it are left out (as
    :class:`~stkd_ros.metrics.ConfusionMatrix` does); None sizes the matrices to the largest
    id counted, for callers that do not know the model's classes.
    """
    if mask_t.shape != mask_next.shape or flow.shape != mask_t.shape + (2,):
        raise InputError(f'masks {mask_t.shape}, {mask_next.shape} and flow {flow.shape} '
                         f'do not match')
    warped, counted = warp_mask(mask_next, flow)
    counted &= mask_t != IGNORE_INDEX
    if num_classes is not None:
        counted &= (mask_t < num_classes) & (warped < num_classes)
    a, b = mask_t[counted].astype(np.int64), warped[counted].astype(np.int64)
    k = num_classes or (int(max(a.max(), b.max())) + 1 if a.size else 1)
    seen = counted if valid is None else counted & valid
    a_seen, b_seen = (a, b) if valid is None else (mask_t[seen].astype(np.int64),
                                                   warped[seen].astype(np.int64))
    return MaskPair(_confusion(a, b, k), _confusion(a_seen, b_seen, k))


def iou(confusion: np.ndarray) -> np.ndarray:
    """Per-class IoU (float64) of a confusion matrix; NaN for classes absent from both axes."""
    mat = confusion.astype(np.float64)
    tp = np.diag(mat)
    union = mat.sum(0) + mat.sum(1) - tp
    with np.errstate(invalid='ignore', divide='ignore'):
        return np.where(union > 0, tp / np.maximum(union, 1), np.nan)


def mean_iou(confusion: np.ndarray) -> float:
    """Mean IoU over the classes present (NaN when none is); of a pair's counts, that is TC."""
    per_class = iou(confusion)
    present = ~np.isnan(per_class)
    return float(per_class[present].mean()) if present.any() else float('nan')


def flicker(confusion: np.ndarray) -> float:
    """Share of counted pixels whose class changed (off the diagonal); NaN when none counted."""
    total = int(confusion.sum())
    return (total - int(np.trace(confusion))) / total if total else float('nan')


def pair_metrics(mask_t: np.ndarray, mask_next: np.ndarray, flow: np.ndarray,
                 num_classes: Optional[int] = None) -> dict:
    """Flicker, TC and the pixels counted for one step of a stream (no occlusion mask)."""
    counts = compare_masks(mask_t, mask_next, flow, num_classes=num_classes).in_bounds
    pixels = int(counts.sum())
    if pixels == 0:
        return {'flicker': float('nan'), 'tc': float('nan'), 'pixels': 0}
    return {'flicker': flicker(counts), 'tc': mean_iou(counts), 'pixels': pixels}
