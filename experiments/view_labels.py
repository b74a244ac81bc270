"""
Diagnostic: how right the labels are that each unlabeled training view is taught with.

Protocol v2's seed 0 ranked the teacher's hard labels computed on each view during training
(row B, Naive-Student) above the same teacher's label store carried into the view (rows L
and R), although the store's labels score higher on whole frames (0.632 against 0.601 label
mIoU). A training view is the frame rescaled (0.75-1.5), cropped and flipped: the store's
classes follow it by nearest-neighbour resampling, while B's teacher looks at the view
itself. This measures both against the world's truth carried into the same views.

Fixed before it ran:
- Views: the first ``--views`` samples of protocol v2's unlabeled stream as seed 0 draws
  them in its first epoch (config/distill/synthetic_video.yaml, one frame per view, the
  training transforms and their seeding), on the 400 never-labeled streets.
- Rows: the store's classes in the view (L, R; all pixels, and the pixels whose confidence
  is at least 0.9, what R's temporal gate keeps); the teacher's argmax on the view (B).
- Score: label mIoU, pixel accuracy and the IoU of the thin classes against the truth store's
  classes in the same view, padding excluded; over all views, and over the views scaled up
  (scale > 1.1) and down (scale < 0.9) apart.

Run from the repository root, after `python -m experiments.best_student` made the stores:
  python -m experiments.view_labels
Writes experiments/results/view_labels.json.
"""

import argparse
from itertools import chain, islice
import random

from bench.report import emit
from experiments.best_student import RESULTS, STORES, TEACHER, THIN
from experiments.unlabeled_ablation import CONFIG
import numpy as np
from stkd_ros.config import load_config
from stkd_ros.data.transforms import RandomScale, train_transforms
from stkd_ros.labeling.store import LabelStore
from stkd_ros.metrics import ConfusionMatrix
from stkd_ros.model_file import load_model_file
from stkd_ros.training.data import build_unlabeled, ResumableBatchSampler, SeededClips
from stkd_ros.training.data import StoreTargets, UNLABELED_SEED_OFFSET
import torch

SURE = 0.9   # R's gate_confidence
SURE_ROW = f'store, confidence >= {SURE}'


class WithTruth:
    """Store-labeled clips that carry the truth store's classes as their labels."""

    def __init__(self, clips: StoreTargets, truth: LabelStore):
        """Wrap ``clips``; ``truth`` gives their labels."""
        self.clips, self.truth = clips, truth

    def __len__(self):
        """Return the number of clips."""
        return len(self.clips)

    def __getitem__(self, index):
        """Return clip ``index`` with the store's targets and the truth as labels."""
        clip = self.clips[index]
        clip.labels = np.stack([self.truth.read(clip.sequence, t)[0] for t in clip.times])
        return clip


class RecordScale(RandomScale):
    """RandomScale that remembers the factor it drew last (for the per-scale split)."""

    def __call__(self, clip):
        """Draw the factor as RandomScale would, keep it in ``last``, and resize."""
        state = random.getstate()
        self.last = random.uniform(self.low, self.high)
        random.setstate(state)
        return super().__call__(clip)


def measure(views: int, seed: int = 0) -> list:
    """Return the table's rows: each kind of label against the truth, over ``views`` views."""
    cfg = load_config(CONFIG)
    data = cfg.data
    clips = build_unlabeled(data, clip_length=1, gap=tuple(data.gap), cache_dir=None)
    both = WithTruth(StoreTargets(clips, LabelStore.open(STORES['teacher'])),
                     LabelStore.open(STORES['truth']))
    transform = train_transforms(crop_size=tuple(data.crop_size),
                                 scale_range=tuple(data.scale_range))
    scale = RecordScale(*data.scale_range)
    transform.transforms[0] = scale
    # The keys seed's unlabeled stream draws first, from the sampler training uses.
    useed = seed + UNLABELED_SEED_OFFSET
    keys = islice(chain.from_iterable(ResumableBatchSampler(len(both), 1, useed)), views)
    stream = SeededClips(both, transform, useed)
    teacher, meta = load_model_file(TEACHER)
    classes = meta['classes']
    groups = ('all', 'scaled up', 'scaled down')
    rows = {name: {g: ConfusionMatrix(len(classes)) for g in groups}
            for name in ('store (L, R)', SURE_ROW, 'online teacher (B)')}
    kept = {g: [0, 0] for g in groups}   # pixels, and those at confidence >= SURE
    for key in keys:
        sample = stream[key]
        with torch.no_grad():
            online = teacher(sample['frames'])['logits'].argmax(1)[0]
        truth, valid = sample['labels'][0], sample['valid']
        store, sure = sample['targets'][0], sample['confidence'][0] >= SURE
        into = ['all'] + (['scaled up'] if scale.last > 1.1 else
                          ['scaled down'] if scale.last < 0.9 else [])
        for g in into:
            kept[g][0] += int(valid.sum())
            kept[g][1] += int((valid & sure).sum())
        for name, pred, mask in (('store (L, R)', store, valid), (SURE_ROW, store, valid & sure),
                                 ('online teacher (B)', online, valid)):
            for g in into:
                rows[name][g].update(pred[None], truth[None], mask[None])
    out = []
    for name, by_group in rows.items():
        for g, cm in by_group.items():
            share = kept[g][1] / kept[g][0] if name == SURE_ROW else 1.0
            per_class = cm.per_class_iou(classes)
            out.append({'labels': name, 'views': g, 'pixels kept': round(share, 4),
                        'miou': round(cm.miou(), 4),
                        'pixel accuracy': round(cm.pixel_accuracy(), 4),
                        **{c: round(per_class[c], 3) for c in THIN}})
    return out


def main():
    """Measure and write experiments/results/view_labels.json."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--views', type=int, default=512)
    parser.add_argument('--results', default=str(RESULTS))
    args = parser.parse_args()
    torch.set_num_threads(1)
    emit('view_labels', measure(args.views),
         ['labels', 'views', 'pixels kept', 'miou', 'pixel accuracy', *THIN], args.results)


if __name__ == '__main__':
    main()
