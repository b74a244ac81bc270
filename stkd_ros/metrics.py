"""
Segmentation quality: mIoU from a confusion matrix built with ``torch.bincount``.

The ignore label is skipped; matrices add up, so they merge across batches.
Temporal stability (TC, flicker) is ``stkd_ros.temporal``'s.
"""

from typing import Dict

from stkd_ros.data.classes import IGNORE_INDEX
from stkd_ros.temporal import iou, mean_iou
import torch


class ConfusionMatrix:
    """Counts (target, prediction) pairs; rows are targets, columns predictions."""

    def __init__(self, num_classes: int, ignore_index: int = IGNORE_INDEX):
        self.num_classes, self.ignore_index = num_classes, ignore_index
        self.mat = torch.zeros(num_classes, num_classes, dtype=torch.int64)

    def update(self, pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor = None):
        """Add label maps of any matching shape; ``mask`` (bool) limits the pixels counted."""
        if pred.shape != target.shape:
            raise ValueError(f'prediction {tuple(pred.shape)} and target '
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
