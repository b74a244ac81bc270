"""
How good a store's labels are, where ground truth exists (the synthetic world always).

Carried labels (`stkd propagate-labels`) are scored by frames from their labeled frame
(:func:`quality_by_distance`); a teacher's as follows.

Label mIoU and per-class IoU against the truth (``stkd_ros.metrics.ConfusionMatrix``: void
pixels skipped), and accuracy against coverage: for each confidence threshold, the share of
truly labeled pixels whose stored confidence reaches it, and how many of those are right. The
store's own files are scored (confidence as stored, x 255), not what a run held in memory, so
a resumed or sharded store is scored like an unbroken one.
"""

from typing import Dict, Iterable, List, Optional

import numpy as np
from stkd_ros.data.classes import IGNORE_INDEX
from stkd_ros.labeling.sources import Sequence
from stkd_ros.labeling.store import LabelStore
from stkd_ros.metrics import ConfusionMatrix
import torch
from tqdm import tqdm

#: Confidence thresholds of the coverage table; 0 keeps every pixel (all labels).
THRESHOLDS = (0.0, 0.5, 0.7, 0.8, 0.9, 0.95)


def store_quality(store: LabelStore, sequences: Iterable[Sequence], *,
                  thresholds=THRESHOLDS, progress: bool = False) -> Optional[dict]:
    """Score ``store`` against the truth its ``sequences`` give; None where none has any."""
    by_name = {s.name: s for s in sequences}
    matrix = ConfusionMatrix(len(store.classes))
    levels = [round(c * 255) for c in thresholds]
    kept, right = np.zeros(len(levels), np.int64), np.zeros(len(levels), np.int64)
    frames = 0
    for name, t, truth in _frames_with_truth(store, by_name, progress):
        labels, confidence = store.read(name, t)
        matrix.update(torch.from_numpy(labels), torch.from_numpy(truth))
        scored = truth != IGNORE_INDEX
        correct = (labels == truth)[scored]
        conf = confidence[scored]
        for i, level in enumerate(levels):
            keep = conf >= level
            kept[i] += int(keep.sum())
            right[i] += int(correct[keep].sum())
        frames += 1
    if frames == 0:
        return None
    pixels = int(matrix.mat.sum())
    summary = matrix.summary(store.classes)
    return {'frames': frames, 'pixels': pixels, 'miou': summary['miou'],
            'pixel_accuracy': summary['pixel_accuracy'],
            'per_class_iou': summary['per_class_iou'],
            'coverage': [{'threshold': c, 'coverage': k / pixels if pixels else float('nan'),
                          'accuracy': r / k if k else float('nan')}
                         for c, k, r in zip(thresholds, kept.tolist(), right.tolist())],
            'oracle': store.oracle, 'teacher_sha256': store.teacher_sha256,
            'source': store.source, 'settings': store.manifest['settings']}


def _frames_with_truth(store: LabelStore, by_name: Dict[str, Sequence], progress: bool):
    """Yield (sequence, t, truth) of each frame of ``store`` whose sequence gives truth."""
    total = sum(e['frames'] for n, e in store.sequences.items() if n in by_name)
    with tqdm(total=total, desc='label quality', unit='frame',
              disable=None if progress else True) as bar:
        for name, entry in store.sequences.items():
            if name not in by_name:
                continue
            for t in range(entry['frames']):
                bar.update()
                truth = by_name[name].truth(t)
                if truth is not None:
                    yield name, t, truth


def quality_table(quality: Dict) -> List[str]:
    """Return the report as lines of text: mIoU, per-class IoU, accuracy at each coverage."""
    lines = [f'label quality on {quality["frames"]} frames with ground truth: mIoU '
             f'{quality["miou"]:.4f}, pixel accuracy {quality["pixel_accuracy"]:.4f}'
             + ('  (ORACLE)' if quality['oracle'] else '')]
    lines += [f'  {name:<12} IoU {iou:.4f}' for name, iou in quality['per_class_iou'].items()]
    lines.append('  confidence >=  coverage  accuracy')
    lines += [f'  {row["threshold"]:>12.2f}  {row["coverage"]:>8.4f}  {row["accuracy"]:>8.4f}'
              for row in quality['coverage']]
    return lines


def quality_by_distance(store: LabelStore, sequences, *, progress: bool = False
                        ) -> Optional[dict]:
    """
    Score carried labels against the truth, by frames from the labeled frame they come from.

    ``sequences`` are ``labeling.labeled_video.LabeledSequence``. A lost pixel (255) is not
    scored: each distance's mIoU is over the pixels kept, and ``kept`` is their share of
    the truly labeled pixels. The top-level figures are over every carried frame (distance
    1 or more); the labeled frames themselves are their truth. None where no carried frame
    has truth (a dataset annotates its labeled frames only).
    """
    by_name = {s.name: s for s in sequences}
    rows: Dict[int, list] = {}          # distance -> [matrix, frames, truly labeled pixels]
    for name, t, truth in _frames_with_truth(
            store, {n: s.sequence for n, s in by_name.items()}, progress):
        row = rows.setdefault(by_name[name].distance(t),
                              [ConfusionMatrix(len(store.classes)), 0, 0])
        row[0].update(torch.from_numpy(store.read(name, t)[0]), torch.from_numpy(truth))
        row[1] += 1
        row[2] += int((truth != IGNORE_INDEX).sum())
    carried = {d: row for d, row in rows.items() if d > 0}
    if not carried:
        return None
    overall = ConfusionMatrix(len(store.classes))
    for matrix, _, _ in carried.values():
        overall.merge(matrix)

    def figures(matrix, frames, pixels):
        kept = int(matrix.mat.sum())
        return {'frames': frames, 'pixels': pixels, 'kept': kept / pixels if pixels else 0.0,
                **matrix.summary(store.classes)}

    return {**figures(overall, sum(r[1] for r in carried.values()),
                      sum(r[2] for r in carried.values())),
            'by_distance': [{'distance': d, **figures(*rows[d])} for d in sorted(rows)],
            'oracle': store.oracle, 'teacher_sha256': store.teacher_sha256,
            'source': store.source, 'settings': store.manifest['settings']}


def distance_table(quality: Dict, classes: Iterable[str] = ('pole', 'pedestrian')
                   ) -> List[str]:
    """Return the carried labels' report as lines: overall, then by distance, then per class."""
    shown = [c for c in classes if c in quality['per_class_iou']]
    lines = [f'label quality on {quality["frames"]} carried frames with ground truth: mIoU '
             f'{quality["miou"]:.4f} on the pixels kept ({quality["kept"]:.4f} kept), pixel '
             f'accuracy {quality["pixel_accuracy"]:.4f}'
             + ('  (ORACLE)' if quality['oracle'] else ''),
             '  frames away  frames    mIoU    kept' + ''.join(f'  {c:>10}' for c in shown)]
    lines += [f'  {row["distance"]:>11}  {row["frames"]:>6}  {row["miou"]:.4f}  '
              f'{row["kept"]:.4f}' + ''.join(f'  {row["per_class_iou"][c]:>10.4f}'
                                             for c in shown)
              for row in quality['by_distance']]
    lines += [f'  {name:<12} IoU {iou:.4f}' for name, iou in quality['per_class_iou'].items()]
    return lines
