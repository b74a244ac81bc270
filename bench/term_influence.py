"""
Experiment: which distillation term raises or lowers each class, at a trained state.

Loads a `stkd distill` run (its config.yaml and last.ckpt: student, discriminator, AdamW state)
and its teacher, draws training batches as the run did, and for every weighted loss term L and
every class c computes the first-order change of J_c, the student's mean log-probability of
the label over the pixels labeled c (frame t), under one AdamW-preconditioned step on L alone:
-<grad J_c, P grad L>, P = 1 / (sqrt(v_hat) + eps) from the run's optimizer state (momentum
and weight decay left out). Positive: descending L makes c more likely where c is. It counts
everything a term does, through shared features included. Reported per class as raw values
(same scale across terms and classes) and their sum, the first-order effect of a whole step.
"""

import argparse
from pathlib import Path

from report import emit
from stkd_ros.config import load_config
from stkd_ros.data.classes import IGNORE_INDEX
from stkd_ros.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from stkd_ros.model_file import load_model_file
from stkd_ros.models import build_model
from stkd_ros.training.checkpoint import load_checkpoint
from stkd_ros.training.data import build_clips, train_loader
from stkd_ros.training.distill_task import DistillationTask
from stkd_ros.training.trainer import flow_source
import torch
import torch.nn.functional as nnf


def load_run(run_dir: Path, teacher_path):
    """Rebuild the run's task at its last checkpoint; returns (cfg, task, preconditioner)."""
    cfg = load_config(run_dir / 'config.yaml')
    classes = build_clips(cfg.data, 'val', clip_length=1, gap=1).classes
    teacher, _ = load_model_file(teacher_path)
    student = build_model(cfg.student.arch, len(classes), **cfg.student.args)
    task = DistillationTask(student, teacher, len(classes), cfg.distill, IMAGENET_MEAN,
                            IMAGENET_STD)
    state = load_checkpoint(run_dir / 'last.ckpt')
    task.load_state_dict(state['task'])
    group = state['optimizer']['param_groups'][0]
    beta2, eps = group['betas'][1], group['eps']
    precondition = []
    for i, p in enumerate(task.trainable_parameters()):
        s = state['optimizer']['state'][i]
        v_hat = s['exp_avg_sq'] / (1 - beta2 ** float(s['step']))
        precondition.append(1.0 / (v_hat.sqrt() + eps))
    return cfg, task, classes, precondition


def influences(task, batch, precondition, num_classes):
    """{term: (K,) influence on each class} and (K,) presence for one batch."""
    params = task.trainable_parameters()
    # The forward updates batch-norm running statistics; put them back so batches don't drift.
    saved = [b.clone() for b in task.model.buffers()]
    out = task(batch)
    terms = [k for k in out if k not in ('loss', 'output') and not k.startswith('_')]

    def grads(value):
        g = torch.autograd.grad(value, params, retain_graph=True, allow_unused=True)
        return [torch.zeros_like(p) if x is None else x for p, x in zip(params, g)]
    steps = {k: [p * g for p, g in zip(precondition, grads(out[k]))] for k in terms}
    labels = batch['labels'][:, 0]
    log_p = nnf.log_softmax(out['output'], dim=1).gather(
        1, labels.masked_fill(labels == IGNORE_INDEX, 0)[:, None])[:, 0]
    result = {k: torch.zeros(num_classes) for k in terms}
    present = torch.zeros(num_classes)
    for c in range(num_classes):
        where = labels == c
        if not where.any():
            continue
        present[c] = 1
        g_c = grads(log_p[where].mean())
        for k in terms:
            result[k][c] = -sum((a * b).sum() for a, b in zip(g_c, steps[k]))
    with torch.no_grad():
        for b, v in zip(task.model.buffers(), saved):
            b.copy_(v)
    return result, present


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--run', required=True, help='a stkd distill output directory')
    parser.add_argument('--teacher', required=True, help='the teacher model file it used')
    parser.add_argument('--batches', type=int, default=4)
    parser.add_argument('--name', default='term_influence', help='JSON file name, without .json')
    args = parser.parse_args()
    cfg, task, classes, precondition = load_run(Path(args.run), args.teacher)
    task.train()
    loader, _ = train_loader(cfg.data, clip_length=2, batch_size=cfg.train.batch_size,
                             seed=cfg.train.seed, start_step=0, workers=0,
                             flow_source=flow_source(cfg, task, args.run))
    totals, seen = {}, torch.zeros(len(classes))
    batches = iter(loader)
    for _ in range(args.batches):
        result, present = influences(task, next(batches), precondition, len(classes))
        seen += present
        for k, v in result.items():
            totals[k] = totals.get(k, 0) + v
    mean = {k: v / seen.clamp(min=1) for k, v in totals.items()}
    rows = []
    for c, name in enumerate(classes):
        row = {'class': name, 'batches': int(seen[c])}
        for k in mean:
            row[k] = f'{mean[k][c]:+.1f}' if seen[c] else 'n/a'
        row['all terms'] = f'{sum(v[c] for v in mean.values()):+.1f}' if seen[c] else 'n/a'
        rows.append(row)
    emit(args.name, rows, ['class', 'batches', *mean, 'all terms'])
    print(f'{args.run}: {args.batches} batches of {cfg.train.batch_size}; first-order change '
          f'of the mean label log-probability of each class per preconditioned step on the '
          f'term')


if __name__ == '__main__':
    main()
