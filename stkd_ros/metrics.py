"""
Segmentation quality and temporal stability, as DESIGN.md defines them.

- mIoU from a confusion matrix built with ``torch.bincount``; ignore label skipped; matrices
  add up, so they merge across batches and processes.
- TC (Liu et al. ECCV 2020): mIoU between the prediction of frame t and the prediction of
  frame t+1 warped back to t along the flow t -> t+1, accumulated over a sequence; reported over
  all in-bounds pixels and over pixels that also pass an occlusion check.
- Flicker: the share of flow-valid pixels whose class changes between consecutive frames after
  flow compensation.
"""

from typing import Dict, Optional

import numpy as np
from stkd_ros.data.classes import IGNORE_INDEX
from stkd_ros.errors import InputError
from stkd_ros.temporal import compare_masks, iou, mean_iou
import torch
import torch.distributed as dist


class ConfusionMatrix:
    """Counts (target, prediction) pairs; rows are targets, columns predictions."""

    def __init__(self, num_classes: int, ignore_index: int = IGNORE_INDEX):
        self.num_classes, self.ignore_index = num_classes, ignore_index
        self.mat = torch.zeros(num_classes, num_classes, dtype=torch.int64)

    def update(self, pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor = None):
        """Add label maps of any matching shape; ``mask`` (bool) limits the pixels counted."""
        if pred.shape != target.shape:
            raise InputError(f'prediction {tuple(pred.shape)} and target '
                             f'{tuple(target.shape)} differ in shape')
        pred, target = pred.reshape(-1).long().cpu(), target.reshape(-1).long().cpu()
        keep = (target != self.ignore_index) & (target >= 0) & (target < self.num_classes)
        keep &= (pred >= 0) & (pred < self.num_classes)
        if mask is not None:
            keep &= mask.reshape(-1).cpu()
        k = self.num_classes
        self.mat += torch.bincount(target[keep] * k + pred[keep], minlength=k * k).reshape(k, k)
        return self

    def merge(self, other: 'ConfusionMatrix'):
        self.mat += other.mat
        return self

    def all_reduce(self):
        """Sum the matrix over all processes of a torch.distributed job (no-op otherwise)."""
        if dist.is_available() and dist.is_initialized():
            mat = self.mat.clone()
            dist.all_reduce(mat)
            self.mat = mat
        return self

    def iou(self) -> torch.Tensor:
        """Per-class IoU (float64); NaN for classes absent from both targets and predictions."""
        return torch.from_numpy(iou(self.mat.numpy()))

    def miou(self) -> float:
        return mean_iou(self.mat.numpy())

    def pixel_accuracy(self) -> float:
        total = self.mat.sum()
        return float(self.mat.diag().sum() / total) if total > 0 else float('nan')

    def per_class_iou(self, class_names=None) -> Dict[str, float]:
        """Per-class IoU keyed by class name (the class index where no names are given)."""
        names = class_names or [str(i) for i in range(self.num_classes)]
        return dict(zip(names, self.iou().tolist()))

    def summary(self, class_names=None) -> Dict[str, object]:
        return {'miou': self.miou(), 'pixel_accuracy': self.pixel_accuracy(),
                'per_class_iou': self.per_class_iou(class_names)}


class TemporalConsistency:
    """Accumulates TC (with and without an occlusion mask) and flicker over frame pairs."""

    def __init__(self, num_classes: int, ignore_index: int = IGNORE_INDEX):
        self.all = ConfusionMatrix(num_classes, ignore_index)
        self.visible = ConfusionMatrix(num_classes, ignore_index)
        self.changed = 0
        self.counted = 0

    def update(self, pred_t: torch.Tensor, pred_next: torch.Tensor, flow: torch.Tensor,
               valid: Optional[torch.Tensor] = None):
        """
        Add a batch of pairs, each counted by :func:`stkd_ros.temporal.compare_masks`.

        pred_t, pred_next: (N, H, W) class ids of frames t and t+1.
        flow: (N, 2, H, W) flow from t to t+1. valid: optional (N, H, W) bool occlusion mask
        (True = visible in both frames); when None, the occlusion-masked figures equal the
        unmasked ones.
        """
        k = self.all.num_classes
        flows = flow.permute(0, 2, 3, 1).float().cpu().numpy()
        for i in range(len(pred_t)):
            pair = compare_masks(pred_t[i].cpu().numpy(), pred_next[i].cpu().numpy(), flows[i],
                                 None if valid is None else valid[i].cpu().numpy(), k)
            self.all.mat += torch.from_numpy(pair.in_bounds)
            self.visible.mat += torch.from_numpy(pair.visible)
            self.counted += int(pair.visible.sum())
            self.changed += int(pair.visible.sum() - np.trace(pair.visible))
        return self

    def flicker(self) -> float:
        return self.changed / self.counted if self.counted else float('nan')

    def summary(self, class_names=None) -> Dict[str, object]:
        # Per class: a class predicted only now and then (small, rare objects) scores near 0
        # and pulls TC down, while a class never predicted does not count at all.
        return {'tc': self.all.miou(), 'tc_occlusion_masked': self.visible.miou(),
                'flicker': self.flicker(), 'per_class_tc': self.all.per_class_iou(class_names)}


def flicker(pred_t: torch.Tensor, pred_next: torch.Tensor, flow: torch.Tensor,
            valid: Optional[torch.Tensor] = None) -> float:
    """Flicker of one or more frame pairs (see :class:`TemporalConsistency`)."""
    num = int(max(pred_t.max(), pred_next.max())) + 1
    return TemporalConsistency(max(num, 1)).update(pred_t, pred_next, flow, valid).flicker()
