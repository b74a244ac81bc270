"""
Experiment: does distillation from unlabeled video pay? The protocol, fixed before the runs.

World: config/distill/synthetic_video.yaml (96x192; 40 labeled streets with one labeled frame
each, 400 never-labeled streets of video, 128 held-out streets reported, 32 tuning streets
apart). Every row trains the same student (LR-ASPP) for the same steps from the same seed,
so a seed means the same initialization and the same labeled batches in every row (the
unlabeled pairs join each batch from a stream of their own):

  A  cross-entropy on the labeled streets                  `stkd train-student`
  B  A + the teacher's hard pseudo-labels on the unlabeled streets (Naive-Student)
  C  A + pixel-wise KD, the unlabeled streets included
  D  the full method on labeled + unlabeled streets
  E  the full method on the labeled streets only
  and the teacher, for reference.

Seeds: 5 for A and D, 3 for the others (paired: the seeds of A). Columns: mIoU, TC, flicker
(mean and sample standard deviation over seeds), the paired per-seed difference to A with
its 95% confidence interval (Student's t over the seeds both rows have), and the IoU of
pole, sign, fence and pedestrian. A gain counts only where its interval excludes 0.
The target: D above A on mIoU by at least 0.02 with the interval above 0, D above A on TC
and below it on flicker; D at least B's mIoU, with better TC and flicker.

With --split tune every run is scored on the tuning streets instead (for choosing settings;
those figures are never the reported ones). The one setting tuned is the temporal weight:
row D, seed 0, at the rows' schedule, weights 1, 3 and 10 (`--set distill.weights.temporal=`);
the weight with the highest tuning mIoU is kept, and within 0.005 of it (one seed's noise)
the one with the lower flicker. Runs whose model file exists are reused, a
killed run resumes from its checkpoint, and every run's command is printed. A run already
recorded in the JSON with the same command (the --out folder aside) and, for the rows that
distill, the same teacher file (by its SHA-256) is kept and not trained again: the protocol
goes on across machines whose runs/ folder is gone. The protocol's teacher (the default of
--teacher) is trained by TEACHER_COMMAND; the JSON names it by its SHA-256, so runs taught
by another teacher file are trained again.

Run from the repository root:
  python -m experiments.unlabeled_ablation
Writes experiments/results/unlabeled_ablation.json:
  {"rows": {"A": {"seeds": {"0": {"miou": ..., "tc": ..., "flicker": ...}, ...}}, ...}}
TC and flicker are those of docs/architecture.md ("Temporal consistency"); runs recorded
before that definition held their TC as tc_occlusion_masked, renamed tc in the JSON (the
figures are those, unchanged), and their TC over occluded pixels too as tc_etc.
"""

import argparse
import json
import os
from pathlib import Path
import time

from bench.report import emit
from experiments.ledger import Ledger, same_run
from experiments.paired import summary_row
from experiments.runs import evaluate_command, score, shown, STKD, stop_runs_on_sigterm
from experiments.runs import train_and_score, train_missing
from stkd_ros.config import DistillWeights, load_config
from stkd_ros.data.render_warm import warm_render_cache
from stkd_ros.labeling.identity import file_sha256

RESULTS = Path(__file__).resolve().parent / 'results'
TEACHER_DIR = 'runs/teacher4k'
TEACHER = f'{TEACHER_DIR}/model.safetensors'
TEACHER_COMMAND = ('stkd train-teacher --config config/distill/synthetic_video.yaml --out '
                   f'{TEACHER_DIR} --steps 4000 --set evaluation.split=tune '
                   '--set train.eval_every=400')
#: The teacher the recorded runs distilled from (SHA-256 7307855e...), kept in the history:
#: restoring it keeps every recorded run, where a retrained teacher has them trained again.
TEACHER_HISTORY = 'c94640f:experiments/teachers/synthetic_video.safetensors'
TEACHER_RESTORE = f'mkdir -p {TEACHER_DIR} && git show {TEACHER_HISTORY} > {TEACHER}'
CONFIG = 'config/distill/synthetic_video.yaml'
#: Every term but cross-entropy off.
ONLY_CE = {'pixel': 0, 'pairwise': 0, 'temporal': 0, 'temporal_kd': 0, 'adversarial': 0,
           'pseudo_label': 0}
#: Settings the recorded runs name that are gone since, each where its value equals its
#: absence: channel-wise KD was a term when rows B and C ran, switched off (weight 0) there;
#: a term of weight 0 is not computed, so those runs trained as today's commands, without it.
RETIRED = ('--set=distill.weights.channel=0',)
NO_UNLABELED = {'data.synthetic.unlabeled_clips': 0}
#: D and E ran when the full method was `stkd distill`'s default, so their recorded commands
#: name no weights; they are kept as the same runs as the commands naming FULL_METHOD.
FULL = DistillWeights.FULL_METHOD
WEIGHTS_WERE_DEFAULT = ('D', 'E')
FULL_SETS = {f'--set=distill.weights.{k}={v}' for k, v in FULL.items()}
#: row: (what it is, distill.weights, other settings, seeds); A runs `stkd train-student`.
ROWS = {
    'A': ('CE on the labeled streets', None, NO_UNLABELED, 5),
    'B': ('A + pseudo-labels on unlabeled streets', {**ONLY_CE, 'pseudo_label': 1}, {}, 3),
    'C': ('A + pixel KD, unlabeled streets', {**ONLY_CE, 'pixel': 1}, {}, 3),
    'D': ('full method, labeled + unlabeled', FULL, {}, 5),
    'E': ('full method, labeled only', FULL, NO_UNLABELED, 3),
}
#: The temporal weights tuned on the tuning streets (row D, seed 0); the docstring's rule.
TUNED_TEMPORAL = (1, 3, 10)
KEEP = ('miou', 'tc', 'tc_etc', 'flicker', 'per_class_iou')
THIN = ('pole', 'sign', 'fence', 'pedestrian')
COLUMNS = ['row', 'seeds', 'miou', 'miou - A (95% CI)', 'tc', 'tc - A (95% CI)', 'flicker',
           'flicker - A (95% CI)', *THIN]


def command(row, seed, args, out):
    """Return the run directory and `stkd` command line of one run."""
    _, weights, settings, _ = ROWS[row]
    run_dir = out / f'{row}_s{seed}'
    sets = list(args.set) + [f'train.seed={seed}', f'evaluation.split={args.split}']
    sets += [f'{k}={v}' for k, v in settings.items()]
    if weights is None:
        cmd = STKD + ['train-student']
    else:
        cmd = STKD + ['distill', '--teacher', args.teacher]
        # A weight the shared --set names is left to it (the temporal weight's tuning runs).
        named = {s.split('=', 1)[0] for s in args.set}
        sets += [f'distill.weights.{k}={v}' for k, v in weights.items()
                 if f'distill.weights.{k}' not in named]
    cmd += ['--config', args.config, '--out', str(run_dir)]
    if args.steps:
        cmd += ['--steps', str(args.steps)]
    return run_dir, cmd + [f'--set={s}' for s in sets]


def plan(args, out: Path) -> list:
    """Return (row, seed, run directory, command) of every run of ``args.rows``."""
    return [(row, str(seed)) + command(row, seed, args, out) for row in args.rows.split(',')
            for seed in range(args.seeds or ROWS[row][3])]


def scoring_sets(args) -> list:
    """Return the `--set`s every score shares: the shared overrides and the split."""
    return [f'--set={s}' for s in args.set + [f'evaluation.split={args.split}']]


def commands() -> list:
    """
    Return every `stkd` command the protocol runs, as shown, with its default arguments.

    The teacher's training; on the held-out and on the tuning streets, each row's runs and
    the scores of them and of the teacher; the temporal weight's tuning runs.
    """
    tuning = [['--split', 'tune', '--rows', 'D', '--seeds', '1', '--set',
               f'distill.weights.temporal={w}'] for w in TUNED_TEMPORAL]
    out = [TEACHER_COMMAND]
    for argv in ([], ['--split', 'tune'], *tuning):
        args = parser().parse_args(argv)
        runs = Path(args.out) / args.split
        scored = [(args.teacher, runs / 'teacher.json')]
        for _, _, run_dir, cmd in plan(args, runs):
            out.append(shown(cmd))
            scored.append((run_dir / 'model.safetensors', run_dir / 'eval.json'))
        out += [shown(evaluate_command(model, evaluation, args.config, scoring_sets(args)))
                for model, evaluation in scored]
    return out


def ledger(path: Path, args, out: Path, teacher_sha: str) -> Ledger:
    """
    Return the protocol's ledger at ``path``.

    Row runs are kept where their command matches (the distilling rows' also where their
    teacher has the same SHA-256); the teacher's own scores where its file and split match.
    """
    def keep(row, seed, run, recorded):
        if row == 'teacher':
            return recorded.get('teacher_sha256') == teacher_sha and (
                recorded.get('config'), recorded.get('split'), recorded.get('set')) == (
                args.config, args.split, args.set)
        if row not in ROWS:
            return False
        _, cmd = command(row, int(seed), args, out)
        forms = [cmd] + ([[w for w in cmd if w not in FULL_SETS]]
                         if row in WEIGHTS_WERE_DEFAULT else [])
        return any(same_run(run['command'], shown(c), RETIRED) for c in forms) and (
            ROWS[row][1] is None or run.get('teacher_sha256') == teacher_sha)

    header = {'protocol': __doc__.split('Run from')[0].strip(), 'config': args.config,
              'steps': args.steps, 'split': args.split, 'teacher': str(args.teacher),
              'teacher_sha256': teacher_sha, 'set': args.set}
    return Ledger(path, header, keep, (*ROWS, 'teacher'))


def recorded_runs(path: Path, args, out: Path, teacher_sha: str, quiet=False) -> dict:
    """Return the runs of an earlier JSON at ``path`` that this protocol trains the same way."""
    return ledger(path, args, out, teacher_sha).kept(quiet)


def summarize(scores: dict) -> list:
    """Table rows: mean ± sd of each metric, the paired difference to A, thin-class IoU."""
    return [summary_row(name, seeds, {} if name == 'teacher' else scores.get('A'),
                        ('miou', 'tc', 'flicker'), THIN)
            for name, seeds in scores.items() if seeds]


def parser() -> argparse.ArgumentParser:
    """Return the protocol's command line."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--teacher', default=TEACHER, help='teacher model file (default: '
                        "the protocol's teacher, trained by TEACHER_COMMAND)")
    parser.add_argument('--config', default=CONFIG)
    parser.add_argument('--out', default='runs/unlabeled')
    parser.add_argument('--steps', type=int, default=None, help="default: the config's")
    parser.add_argument('--rows', default='A,B,C,D,E')
    parser.add_argument('--seeds', type=int, default=None,
                        help='seeds per row (default: 5 for A and D, 3 for the others)')
    parser.add_argument('--split', default='val', choices=['val', 'tune'])
    parser.add_argument('--set', action='append', default=[], help='shared overrides')
    parser.add_argument('--jobs', type=int, default=1, help='runs trained at the same time')
    parser.add_argument('--name', default=None, help='JSON name (default: '
                        'unlabeled_ablation, or unlabeled_ablation_tune with --split tune)')
    parser.add_argument('--results', default=str(RESULTS), help='where the JSON goes')
    parser.add_argument('--table', action='store_true', help='only remake the table from the '
                        'recorded JSON (every run it holds, whatever its teacher)')
    return parser


def main():
    args = parser().parse_args()
    name = args.name or ('unlabeled_ablation' + ('_tune' if args.split == 'tune' else ''))
    path = Path(args.results) / f'{name}.json'
    if args.table:
        recorded = json.loads(path.read_text())['rows']
        emit(name + '_table', summarize({row: e['seeds'] for row, e in recorded.items()}),
             COLUMNS, args.results)
        return
    stop_runs_on_sigterm()
    rows = args.rows.split(',')
    unknown = set(rows) - set(ROWS)
    if unknown:
        raise SystemExit(f'--rows: unknown row(s) {", ".join(sorted(unknown))}; expected '
                         f'{", ".join(ROWS)}')
    if not Path(args.teacher).is_file():   # before anything is written
        raise SystemExit(f"--teacher: no such file {args.teacher}; restore the protocol's "
                         f'teacher with: {TEACHER_RESTORE} (or train one, and its rows '
                         f'again, with: {TEACHER_COMMAND})')
    out = Path(args.out) / args.split
    out.mkdir(parents=True, exist_ok=True)
    shared = scoring_sets(args)
    planned = plan(args, out)
    threads = max(1, (os.cpu_count() or 1) // args.jobs) if args.jobs > 1 else None
    teacher_sha = file_sha256(args.teacher)
    book = ledger(path, args, out, teacher_sha)
    # Every view rendered up front on all cores: on a fresh machine a run on 400 unlabeled
    # streets would otherwise render nearly every frame it draws inside a training step.
    began = time.monotonic()
    rendered = warm_render_cache(load_config(args.config, args.set).data,
                                 eval_split=args.split, workers=os.cpu_count() or 1)
    print(f'render cache: {rendered} frames rendered in {time.monotonic() - began:.0f} s')
    scores = {row: {} for row in rows}
    scores.update(book.kept())
    if not scores.get('teacher'):
        teacher = score(args.teacher, out / 'teacher.json', args.config, shared)
        scores['teacher'] = {'0': {k: teacher[k] for k in KEEP}}

    def run_one(row, seed, run_dir, cmd):
        r = train_and_score(cmd, run_dir, args.config, shared, threads)
        # Where it ran (eval.json's torch device): rows may mix machines, the reader should see.
        run = {**{k: r[k] for k in KEEP}, 'device': r.get('device'), 'command': shown(cmd)}
        if ROWS[row][1] is not None:
            run['teacher_sha256'] = teacher_sha
        return run

    train_missing(planned, scores, book, run_one, args.jobs)
    emit(name + '_table', summarize(book.in_order(scores)), COLUMNS, args.results)
    print(f'wrote {path}\n\nEach run alone:')
    for row, seed, _, cmd in planned:
        print(f'{row}, seed {seed}: {shown(cmd)}')


if __name__ == '__main__':
    main()
