"""
Benchmark: what one training step costs, data included, for each row of the protocol.

Rows: a plain student step (cross-entropy, one frame per sample) on the batch's labeled clips
and on twice as many; the default recipe, the teacher's pseudo-labels computed online (one
frame, the teacher on it); pixel-wise KD (the same, soft targets); the full method (two
frames, flow, discriminator); and the label store's pseudo-labels (one frame, no teacher: the
store's classes come with the batch). The rows with a teacher run its forward in fp32,
and again in bf16 (``teacher.precision``, under autocast; where the CPU lacks native
bfloat16 it is emulated, and the table's header says so). The distillation rows add as many
unlabeled clips as labeled ones (data.unlabeled_ratio 1). Each row runs the same batches
twice: first with the render and flow caches empty (cold), then again over the same views
with both filled (warm). The table gives the median step of each pass, its ratio to the
plain step, and to the plain step with as many clips. A step is: load the batch (in this
process, so its cost is counted), forward, backward, optimizer step, and the task's own step
(the discriminator). Protocol v3's candidates follow (two frames and, but BK, their flow;
BTc costs what BTa does). The store is the world's own labels (write_truth_store, made before the
timing): reading it costs what reading a teacher's store costs.
"""

import argparse
from dataclasses import replace
from functools import partial
import statistics
import tempfile
import time

from report import emit
from stkd_ros.config import DistillConfig, DistillWeights, load_config
from stkd_ros.labeling.store import write_truth_store
from stkd_ros.models import build_model
from stkd_ros.teacher_precision import native_bf16
from stkd_ros.training.data_needs import data_needs
from stkd_ros.training.distill_task import DistillationTask
from stkd_ros.training.loader import train_loader
from stkd_ros.training.tasks import SupervisedTask
from stkd_ros.training.updates import Update
import torch

PIXEL_ONLY = DistillWeights(pseudo_label=0, pixel=1)
FULL_METHOD = DistillWeights(**DistillWeights.FULL_METHOD)
PSEUDO_LABELS = DistillWeights()    # the default recipe: pseudo-labels alone
#: row: (distill settings or None for a plain step, clips per step x the batch's labeled
#: ones, whether the targets come from the label store, the teacher's precision)
ROWS = {
    'plain student step (CE)': (None, 1, False, 'fp32'),
    'plain student step (CE), as many clips': (None, 2, False, 'fp32'),
    'online pseudo-labels (the default)': (DistillConfig(weights=PSEUDO_LABELS), 2, False,
                                           'fp32'),
    'online pseudo-labels (the default), bf16 teacher': (DistillConfig(weights=PSEUDO_LABELS),
                                                         2, False, 'bf16'),
    'pixel-wise KD': (DistillConfig(weights=PIXEL_ONLY), 2, False, 'fp32'),
    'pixel-wise KD, bf16 teacher': (DistillConfig(weights=PIXEL_ONLY), 2, False, 'bf16'),
    'full method': (DistillConfig(weights=FULL_METHOD), 2, False, 'fp32'),
    'full method, bf16 teacher': (DistillConfig(weights=FULL_METHOD), 2, False, 'bf16'),
    'label store (pseudo-labels)': (DistillConfig(weights=PSEUDO_LABELS), 2, True, 'fp32'),
    # Protocol v3's candidates (experiments/recipe_v3.py), with its bf16 teacher.
    'v3 BF: views fused along the flow, bf16 teacher': (
        DistillConfig(weights=PSEUDO_LABELS, fuse_views=True), 2, False, 'bf16'),
    'v3 BTa: + temporal 0.4, teacher agreement, bf16 teacher': (
        DistillConfig(weights=DistillWeights(temporal=0.4), temporal_gate='agreement'), 2,
        False, 'bf16'),
    'v3 BK: + temporal KD, bf16 teacher': (
        DistillConfig(weights=DistillWeights(temporal_kd=1)), 2, False, 'bf16'),
    # LTc, what protocol v2's pilot picked before the label-alignment fix (docs/history.md).
    'label store + temporal, confidence-gated': (
        DistillConfig(weights=DistillWeights(temporal=3),
                      temporal_gate='confidence', gate_confidence=0.9), 2, True, 'fp32'),
}


def make_task(row, cfg):
    """Return the row's task and what its batches need (the row's distill settings)."""
    student = build_model(cfg.student.arch, 11)
    distill, _, _, precision = ROWS[row]
    if distill is None:
        return SupervisedTask(student), data_needs(cfg, distill=False)
    cfg.distill = replace(distill, flow=cfg.distill.flow)   # the row's terms, the run's flow
    needs = data_needs(cfg, distill=True)
    teacher = build_model('teacher', 11, size='tiny')
    return DistillationTask(student, teacher, 11, distill, store_targets=bool(needs.store),
                            teacher_precision=precision), needs


def step_times(task, needs, cfg, steps, run_dir):
    """Median ms of ``steps`` steps, twice over the same batches: (cold, warm)."""
    torch.manual_seed(0)
    make = partial(Update, lr_factor=lambda step: 1.0, amp=False, device_type='cpu')
    updates = {'model': make(torch.optim.AdamW(task.trainable_parameters(), lr=1e-3)),
               **task.own_updates(make)}
    task.train()
    medians = []
    for _ in ('cold', 'warm'):
        loader = train_loader(cfg.data, needs, batch_size=cfg.train.batch_size, seed=0,
                              start_step=0, workers=0, run_dir=run_dir)
        batches, times = iter(loader), []
        for _ in range(steps):
            tic = time.perf_counter()
            task.training_step(next(batches), updates)
            times.append(time.perf_counter() - tic)
        medians.append(statistics.median(times[1:]) * 1e3)   # the first step warms up
    return medians


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--config', default='config/distill/synthetic_video.yaml')
    parser.add_argument('--steps', type=int, default=8)
    parser.add_argument('--set', action='append', default=[], help='config overrides')
    parser.add_argument('--out', default=None, help='where the JSON goes')
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        store = f'{tmp}/store'
        write_truth_store(store, load_config(args.config, args.set).data)
        for row, (distill, clips, from_store, precision) in ROWS.items():
            # Every row starts with empty caches of its own: its cold pass renders.
            sets = [f'data.synthetic.render_cache={tmp}/{len(rows)}/render',
                    f'distill.flow.cache={tmp}/{len(rows)}/flow', 'distill.flow.method=dis']
            if distill is None and clips == 2:
                batch = load_config(args.config, args.set).train.batch_size
                sets.append(f'train.batch_size={2 * batch}')
            if from_store:
                sets.append(f'data.labels={store}')
            cfg = load_config(args.config, args.set + sets)
            task, needs = make_task(row, cfg)
            cold, warm = step_times(task, needs, cfg, args.steps, f'{tmp}/{len(rows)}')
            rows.append({'row': row, 'clips': cfg.train.batch_size * (clips if distill else 1),
                         'frames_per_sample': needs.frames, 'teacher_precision':
                         precision if distill and task.uses_teacher else None,
                         'cold_ms': cold, 'warm_ms': warm})
    plain = {r['clips']: r for r in rows if ROWS[r['row']][0] is None}
    for r in rows:
        r['cold_x_plain'] = r['cold_ms'] / rows[0]['cold_ms']
        r['warm_x_plain'] = r['warm_ms'] / rows[0]['warm_ms']
        r['warm_x_plain_same_clips'] = r['warm_ms'] / plain[r['clips']]['warm_ms']
    h, w = cfg.data.crop_size
    print(f'batch {cfg.train.batch_size} labeled (+ as many unlabeled for distillation) at '
          f'{h}x{w}, student {cfg.student.arch}, tiny teacher, {torch.get_num_threads()} '
          f'threads, native bf16: {native_bf16("cpu")}; targets with warm caches: pixel-wise '
          f'KD <= 1.5x, full <= 2.5x; the label store <= 1.5x the plain step with as many '
          f'clips')
    emit('distill_step', rows, ['row', 'clips', 'frames_per_sample', 'teacher_precision',
                                'cold_ms', 'cold_x_plain', 'warm_ms', 'warm_x_plain',
                                'warm_x_plain_same_clips'], args.out)


if __name__ == '__main__':
    main()
