"""
Is Fast-SCNN as accurate as LR-ASPP? The protocol of issue 47, fixed before its runs.

Issue 47 makes the CPU student (`student.arch: fast_scnn`) the default only if it is at
least as accurate as LR-ASPP in protocol v2's rows A and B: paired seeds, the 95% interval of
the mIoU difference above -0.005. Otherwise it stays an option, with its measured trade.

World, teacher, schedule, held-out streets: protocol v2's (experiments/best_student.py):
config/distill/synthetic_video.yaml (96x192, 40 labeled streets, 400 unlabeled, 128 held-out
streets reported), its teacher (SHA-256 2aba07d9...), 3000 steps, batch 8, one torch thread a
run. Nothing is tuned: Fast-SCNN trains with LR-ASPP's optimizer and schedule, so there is no
pilot; the cheap row A plays its part (below).

Rows:
  FA  Fast-SCNN, labels only                          (v2's row A with student.arch=fast_scnn)
  FB  Fast-SCNN + the teacher's hard labels, online   (v2's row B with student.arch=fast_scnn)
  Ad  LR-ASPP, labels only, seed 0 again at this commit: the drift check of the baseline
LR-ASPP's rows are v2's recorded runs (experiments/results/best_student.json, seeds 0-2):
same seed, same labeled batches (the two students' initializations differ by necessity).
If Ad differs from v2's A seed 0 by more than 0.005 mIoU (one seed's noise), the code has
drifted: Ad runs seeds 1 and 2 too (`--rows Ad` plans them) and FA pairs with Ad instead of
v2's A.

Seeds: 3 a row (0, 1, 2). Stages, cheap first:
  1. FA and Ad. If the interval of FA - A (mIoU) reaches -0.005 or below, Fast-SCNN fails
     the default's condition whatever B says: FB is not run, and the verdict is "an option".
  2. Otherwise FB (about 70 minutes a run here), paired with v2's B (the same teacher file).
Fast-SCNN becomes the default only if both FA - A and FB - B have their mIoU interval above
-0.005. Reported whatever comes out: each difference (mIoU, flicker, TC) with its interval,
and the thin classes' IoU.

Run from the repository root:
  python -m experiments.cpu_student --rows FA,Ad --jobs 2   # stage 1
  python -m experiments.cpu_student --rows FB --jobs 2      # stage 2, if stage 1 allows it
  python -m experiments.cpu_student --table                 # the table from the JSON alone
Writes experiments/results/cpu_student.json (the ledger) and cpu_student_table.json.
"""

import argparse
import json
import os
from pathlib import Path

from bench.report import emit
from experiments import best_student as v2
from experiments.ledger import Ledger, same_run
from experiments.paired import difference_text, paired_difference, summary_row
from experiments.runs import provenance, shown, stop_runs_on_sigterm, train_and_score
from experiments.runs import train_missing
from stkd_ros.labeling.identity import file_sha256

FAST = {'student.arch': 'fast_scnn'}
#: row: (what it is, store, weights or None (train-student), distill settings, settings,
#: seeds), as protocol v2's rows.
ROWS = {
    'FA': ('Fast-SCNN, labels only', None, None, {}, {**v2.NO_UNLABELED, **FAST}, 3),
    'FB': ("Fast-SCNN + teacher's hard labels, online", None, v2.HARD, {}, FAST, 3),
    'Ad': ('LR-ASPP, labels only, again (drift check)', None, None, {}, v2.NO_UNLABELED, 1),
}
DRIFT = 0.005
MARGIN = -0.005
KEYS = ('miou', 'flicker', 'tc')


def parser() -> argparse.ArgumentParser:
    """Return the protocol's command line."""
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--teacher', default=v2.TEACHER)
    p.add_argument('--config', default=v2.CONFIG)
    p.add_argument('--out', default='runs/cpu_student')
    p.add_argument('--rows', default='FA,Ad')
    p.add_argument('--seeds', type=int, default=None, help="default: each row's")
    p.add_argument('--jobs', type=int, default=1, help='runs trained at the same time')
    p.add_argument('--table', action='store_true', help='only remake the table')
    p.add_argument('--results', default=str(v2.RESULTS))
    return p


def _recorded_v2() -> dict:
    return json.loads((v2.RESULTS / 'best_student.json').read_text())['rows']


def drifted(scores: dict) -> bool:
    """Whether the drift check moved from v2's A seed 0 by more than DRIFT."""
    check = scores.get('Ad', {}).get('0')
    return bool(check) and abs(check['miou'] - _recorded_v2()['A']['seeds']['0']['miou']) > DRIFT


def planned_rows(scores: dict) -> dict:
    """Return the rows to train: Ad with every seed of FA once the drift check has moved."""
    if not drifted(scores):
        return ROWS
    return {**ROWS, 'Ad': (*ROWS['Ad'][:5], ROWS['FA'][5])}


def baselines(scores: dict) -> dict:
    """
    Return the LR-ASPP runs each Fast-SCNN row pairs with: {row: (name, {seed: run})}.

    v2's recorded A, unless the drift check moved by more than DRIFT; then this commit's Ad.
    """
    recorded = _recorded_v2()
    a = ('Ad', scores['Ad']) if drifted(scores) else ('A (v2)', recorded['A']['seeds'])
    return {'FA': a, 'FB': ('B (v2)', recorded['B']['seeds'])}


def table(scores: dict) -> list:
    """Rows of the table: each Fast-SCNN row beside its baseline, differences paired."""
    out = []
    for row, (name, base) in baselines(scores).items():
        seeds = scores.get(row)
        if not seeds:
            continue
        common = {s: base[s] for s in seeds if s in base}
        out.append(summary_row(f'{name}, seeds {",".join(sorted(common))}', common, None,
                               KEYS, v2.THIN))
        line = summary_row(row, seeds, None, KEYS, v2.THIN)
        for key in KEYS:
            line[f'{key} - base (95% CI)'] = difference_text(
                *paired_difference(seeds, base, key), base=name)
        out.append(line)
    check = scores.get('Ad', {}).get('0')
    if check:
        out.append({**summary_row('Ad (drift check)', {'0': check}, None, KEYS, v2.THIN)})
    return out


def verdict(scores: dict) -> str:
    """Return the protocol's verdict: the default, an option, or open (with the reason)."""
    lows = {}
    for row, (name, base) in baselines(scores).items():
        _, low, _, n = paired_difference(scores.get(row, {}), base, 'miou')
        lows[row] = low if n == ROWS[row][5] else None
    if drifted(scores) and len(scores['Ad']) < ROWS['FA'][5]:
        return 'open: the drift check moved; Ad needs every seed of FA (--rows Ad)'
    if lows['FA'] is not None and not lows['FA'] > MARGIN:
        return f'an option: FA - A mIoU interval reaches {lows["FA"]:+.4f} (<= {MARGIN})'
    if None in lows.values():
        return 'open: ' + ', '.join(r for r, low in lows.items() if low is None) + ' missing'
    if lows['FB'] > MARGIN:
        return 'the default: both intervals above -0.005'
    return f'an option: FB - B mIoU interval reaches {lows["FB"]:+.4f} (<= {MARGIN})'


def main():
    args = parser().parse_args()
    path = Path(args.results) / 'cpu_student.json'
    if args.table:
        scores = {row: e['seeds'] for row, e in json.loads(path.read_text())['rows'].items()}
        columns = ['row', 'seeds', *[c for k in KEYS for c in (k, f'{k} - base (95% CI)')],
                   *v2.THIN]
        emit('cpu_student_table', table(scores), columns, args.results)
        print(f'verdict: {verdict(scores)}')
        return
    stop_runs_on_sigterm()
    args.split, args.steps = 'val', None
    chosen = args.rows.split(',')
    unknown = sorted(set(chosen) - set(ROWS))
    if unknown:
        raise SystemExit(f'--rows: no row {", ".join(unknown)}; the rows are {", ".join(ROWS)}')
    out = Path(args.out) / args.split
    out.mkdir(parents=True, exist_ok=True)
    known = {row: v2.identity(row, ROWS, args.teacher) if ROWS[row][2] else {}
             for row in chosen}

    def keep(row, seed, run, recorded):
        _, cmd = v2.command(row, int(seed), args, out, ROWS)
        return row in ROWS and same_run(run['command'], shown(cmd)) and all(
            run.get(k) == v for k, v in known.get(row, {}).items())

    header = {'protocol': __doc__.split('Run from')[0].strip(), 'config': args.config,
              'teacher_sha256': file_sha256(args.teacher)}
    book = Ledger(path, header, keep, ROWS)
    threads = max(1, (os.cpu_count() or 1) // args.jobs)
    scores = {row: {} for row in ROWS}
    for row, seeds in book.kept().items():
        scores[row].update(seeds)
    planned = v2.plan(args, out, planned_rows(scores), chosen)

    def run_one(row, seed, run_dir, cmd):
        code = provenance(threads)
        r = train_and_score(cmd, run_dir, args.config, v2.scoring_sets(args), threads)
        return {**{k: r[k] for k in v2.KEEP}, 'device': r.get('device'), **code,
                **known[row], 'command': shown(cmd)}

    train_missing(planned, scores, book, run_one, args.jobs)
    print(f'wrote {path}; verdict: {verdict(scores)}')


def commands() -> list:
    """Every `stkd` command the protocol runs, as shown (checked by test_experiments.py)."""
    args = parser().parse_args([])
    args.split, args.steps = 'val', None
    out = Path(args.out) / args.split
    return [shown(cmd) for *_, cmd in v2.plan(args, out, ROWS, list(ROWS))]


if __name__ == '__main__':
    main()
