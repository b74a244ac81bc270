"""
Experiment: which distillation terms help, on the synthetic world, over several seeds.

Every row trains the same student for the same steps on the same two-frame batches with
`stkd distill`, switching loss terms on and off with --set; the baseline switches all of them
off (cross-entropy only). Each run is evaluated on held-out clips (mIoU, TC, flicker, with the
world's exact flow) and the table reports mean and standard deviation over seeds. The exact
command of every run is printed and stored, so any row can be reproduced alone.

Run from the repository root: python -m experiments.ablation --teacher FILE ...
The tables' JSON goes to bench/results/, each run's scores to <out>/runs.json.
"""

import argparse
from concurrent.futures import ThreadPoolExecutor
import json
import math
import os
from pathlib import Path
import statistics

from bench.report import emit
from experiments.runs import score, shown, STKD, stop_runs_on_sigterm, train_and_score

RESULTS = Path(__file__).resolve().parents[1] / 'bench' / 'results'
OFF = {'pixel': 0, 'channel': 0, 'pairwise': 0, 'temporal': 0, 'temporal_kd': 0, 'adversarial': 0}
ROWS = {   # name: (directory slug, distill.weights to set; None keeps the default)
    'baseline (CE only)': ('baseline', OFF),
    '+ spatial (pixel, pair-wise)': ('spatial', {**OFF, 'pixel': None, 'channel': None,
                                                 'pairwise': None}),
    '+ temporal (consistency, temporal KD)': ('temporal', {**OFF, 'temporal': None,
                                                           'temporal_kd': None}),
    '+ adversarial': ('adversarial', {**OFF, 'adversarial': None}),
    'full method': ('full', {}),
    # Leave-one-out rows, run only when named in --rows: which term costs the full method.
    'full - spatial': ('no_spatial', {'pixel': 0, 'channel': 0, 'pairwise': 0}),
    'full - temporal consistency': ('no_temporal', {'temporal': 0}),
    'full - temporal KD': ('no_temporal_kd', {'temporal_kd': 0}),
    'full - adversarial': ('no_adversarial', {'adversarial': 0}),
}
SLUGS = [slug for slug, _ in ROWS.values()]
DEFAULT_SLUGS = SLUGS[:5]   # the table: baseline, each family alone, full


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--teacher', required=True, help='teacher model file')
    parser.add_argument('--config', default='config/distill/synthetic.yaml')
    parser.add_argument('--out', default='runs/ablation')
    parser.add_argument('--steps', type=int, default=200)
    parser.add_argument('--seeds', default='0,1,2')
    parser.add_argument('--set', action='append', default=[], help='shared overrides')
    parser.add_argument('--jobs', type=int, default=1, help='runs trained at the same time')
    parser.add_argument('--rows', default=','.join(DEFAULT_SLUGS),
                        help=f'comma-separated row slugs to run, of {", ".join(SLUGS)} '
                             f'(default: {",".join(DEFAULT_SLUGS)})')
    args = parser.parse_args()
    stop_runs_on_sigterm()
    chosen = chosen_rows(args.rows)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    shared = [f'--set={s}' for s in args.set]
    results = []
    teacher = score(args.teacher, out / 'teacher.json', args.config, shared)
    # Runs are independent; with --jobs N they share the cores, each with cpu_count / N threads
    # (the figures depend only on the seed, not on the thread count's timing).
    threads = max(1, (os.cpu_count() or 1) // args.jobs) if args.jobs > 1 else None
    planned = []
    for name, (slug, weights) in chosen.items():
        for seed in args.seeds.split(','):
            run_dir = out / f'{slug}_s{seed}'
            sets = shared + [f'--set=train.seed={seed}'] + [
                f'--set=distill.weights.{k}={v}' for k, v in weights.items() if v is not None]
            cmd = STKD + ['distill', '--config', args.config, '--teacher', args.teacher,
                          '--out', str(run_dir), '--steps', str(args.steps)] + sets
            planned.append((name, seed, run_dir, cmd))
    with ThreadPoolExecutor(args.jobs) as pool:
        scores = list(pool.map(
            lambda plan: train_and_score(plan[3], plan[2], args.config, shared, threads),
            planned))
    for (name, seed, _, cmd), r in zip(planned, scores):
        results.append({'row': name, 'seed': seed, 'command': shown(cmd),
                        **{k: r[k] for k in ('miou', 'tc', 'tc_occlusion_masked', 'flicker',
                                             'per_class_iou', 'per_class_tc')}})
    # TC is a mean over the classes a model predicts; a rare class predicted in a few pixels of
    # one frame scores 0 and one never predicted does not count, which swings TC between seeds.
    # The same mean over the classes every run predicts separates that from real stability.
    names = results[0]['per_class_tc']
    shared_classes = [c for c in names
                      if not any(math.isnan(r['per_class_tc'][c]) for r in results)]
    for r in results:
        r['tc_shared_classes'] = statistics.mean(r['per_class_tc'][c] for c in shared_classes)
    teacher['tc_shared_classes'] = statistics.mean(teacher['per_class_tc'][c]
                                                   for c in shared_classes)
    metrics = ('miou', 'tc', 'tc_shared_classes', 'flicker')
    rows = [{'row': 'teacher (reference)', 'seeds': 1,
             **{k: f'{teacher[k]:.4f}' for k in metrics}}]
    for name in chosen:
        mine = [r for r in results if r['row'] == name]
        row = {'row': name, 'seeds': len(mine)}
        for k in metrics:
            values = [r[k] for r in mine]
            spread = statistics.stdev(values) if len(values) > 1 else 0.0
            row[k] = f'{statistics.mean(values):.4f} ± {spread:.4f}'
        rows.append(row)
    (out / 'runs.json').write_text(json.dumps(results, indent=2))
    emit('ablation', rows, ['row', 'seeds', *metrics], RESULTS)
    print(f'tc_shared_classes: TC over {", ".join(shared_classes)}\n')
    per_class(results, chosen)
    print('\nEach run alone (reused runs included):')
    for r in results:
        print(f"{r['row']}, seed {r['seed']}: {r['command']}")


def chosen_rows(slugs: str) -> dict:
    """Pick the rows of ROWS named by their slugs, in table order; an unknown slug is an error."""
    wanted = set(slugs.split(','))
    unknown = wanted - set(SLUGS)
    if unknown:
        raise SystemExit(f'--rows: unknown row(s) {", ".join(sorted(unknown))}; expected '
                         f'{", ".join(SLUGS)}')
    return {name: row for name, row in ROWS.items() if row[0] in wanted}


def nanmean(values):
    kept = [v for v in values if not math.isnan(v)]
    return statistics.mean(kept) if kept else float('nan')


def per_class(results, rows):
    """Per class, IoU and TC of each row (mean over seeds): where TC is won or lost."""
    columns, by_class = ['class'], {}
    for name, (slug, _) in rows.items():
        mine = [r for r in results if r['row'] == name]
        for metric, key in (('IoU', 'per_class_iou'), ('TC', 'per_class_tc')):
            column = f'{slug} {metric}'
            columns.append(column)
            for cls in mine[0][key]:
                value = nanmean([r[key][cls] for r in mine])
                by_class.setdefault(cls, {'class': cls})[column] = (
                    'n/a' if math.isnan(value) else f'{value:.3f}')
    emit('ablation_per_class', list(by_class.values()), columns, RESULTS)


if __name__ == '__main__':
    main()
