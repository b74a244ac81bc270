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
Writes bench/results/unlabeled_ablation.json:
  {"rows": {"A": {"seeds": {"0": {"miou": ..., "tc": ..., "flicker": ...}, ...}}, ...}}
"""

import argparse
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
import fcntl
import hashlib
import json
import math
import os
from pathlib import Path
import shlex
import statistics
import threading
import time

from bench.report import emit
from experiments.runs import score, shown, STKD, stop_runs_on_sigterm, train_and_score
from stkd_ros.config import load_config
from stkd_ros.training.data import warm_render_cache

RESULTS = Path(__file__).resolve().parents[1] / 'bench' / 'results'
TEACHER_DIR = 'runs/teacher4k'
TEACHER = f'{TEACHER_DIR}/model.safetensors'
TEACHER_COMMAND = ('stkd train-teacher --config config/distill/synthetic_video.yaml --out '
                   f'{TEACHER_DIR} --steps 4000 --set evaluation.split=tune '
                   '--set train.eval_every=400')
#: The teacher the recorded runs distilled from (SHA-256 7307855e...), kept in the history:
#: restoring it keeps every recorded run, where a retrained teacher has them trained again.
TEACHER_HISTORY = 'c94640f:experiments/teachers/synthetic_video.safetensors'
TEACHER_RESTORE = f'mkdir -p {TEACHER_DIR} && git show {TEACHER_HISTORY} > {TEACHER}'
#: Options naming where a run's files lie, not what it trains (the teacher goes by its hash).
PATH_OPTIONS = ('--out', '--teacher')
CONFIG = 'config/distill/synthetic_video.yaml'
ONLY_CE = {'pixel': 0, 'channel': 0, 'pairwise': 0, 'temporal': 0, 'temporal_kd': 0,
           'adversarial': 0, 'pseudo_label': 0}
NO_UNLABELED = {'data.synthetic.unlabeled_clips': 0}
#: row: (what it is, distill.weights, other settings, seeds); A runs `stkd train-student`.
ROWS = {
    'A': ('CE on the labeled streets', None, NO_UNLABELED, 5),
    'B': ('A + pseudo-labels on unlabeled streets', {**ONLY_CE, 'pseudo_label': 1}, {}, 3),
    'C': ('A + pixel KD, unlabeled streets', {**ONLY_CE, 'pixel': 1}, {}, 3),
    'D': ('full method, labeled + unlabeled', {}, {}, 5),
    'E': ('full method, labeled only', {}, NO_UNLABELED, 3),
}
KEEP = ('miou', 'tc', 'tc_occlusion_masked', 'flicker', 'per_class_iou')
THIN = ('pole', 'sign', 'fence', 'pedestrian')
#: Two-sided 95% quantiles of Student's t by degrees of freedom (any statistics table).
T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306,
       9: 2.262}


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
        sets += [f'distill.weights.{k}={v}' for k, v in weights.items()]
    cmd += ['--config', args.config, '--out', str(run_dir)]
    if args.steps:
        cmd += ['--steps', str(args.steps)]
    return run_dir, cmd + [f'--set={s}' for s in sets]


def file_sha256(path) -> str:
    """Hex SHA-256 of a file: names a teacher by its weights, wherever it lies."""
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()


def same_run(recorded: str, planned: str) -> bool:
    """Whether two shown commands train the same run: equal but for --out and --teacher."""
    def essential(text):
        words = shlex.split(text)
        return [w for i, w in enumerate(words)
                if w not in PATH_OPTIONS and (i == 0 or words[i - 1] not in PATH_OPTIONS)]
    return essential(recorded) == essential(planned)


def recorded_runs(path: Path, args, out: Path, teacher_sha: str, quiet=False) -> dict:
    """
    Return the runs of an earlier JSON at ``path`` that this protocol trains the same way.

    Row runs are kept where their command matches (the distilling rows' also where their
    teacher has the same SHA-256); the teacher's own scores where its file and split match.
    What does not match is reported and left out, to be run again.
    """
    if not path.is_file():
        return {}
    earlier = json.loads(path.read_text())
    kept = {}
    for row, entry in earlier.get('rows', {}).items():
        for seed, run in entry['seeds'].items():
            if row == 'teacher':
                same = (earlier.get('teacher_sha256') == teacher_sha
                        and (earlier.get('config'), earlier.get('split'), earlier.get('set'))
                        == (args.config, args.split, args.set))
            elif row in ROWS:
                _, cmd = command(row, int(seed), args, out)
                same = same_run(run['command'], shown(cmd)) and (
                    ROWS[row][1] is None or run.get('teacher_sha256') == teacher_sha)
            else:
                same = False
            if same:
                kept.setdefault(row, {})[seed] = run
            elif not quiet:
                print(f'{path.name}: {row}, seed {seed} was recorded with another command '
                      f'or teacher; not reused')
    return kept


def paired_difference(row: dict, base: dict, key: str):
    """Mean per-seed difference row - base over their common seeds, with its 95% interval."""
    seeds = sorted(set(row) & set(base), key=int)
    diffs = [row[s][key] - base[s][key] for s in seeds]
    if not diffs:
        return float('nan'), float('nan'), float('nan'), 0
    mean = statistics.mean(diffs)
    if len(diffs) < 2:
        return mean, float('nan'), float('nan'), len(diffs)
    half = T95[len(diffs) - 1] * statistics.stdev(diffs) / math.sqrt(len(diffs))
    return mean, mean - half, mean + half, len(diffs)


def difference_text(mean: float, low: float, high: float, n: int) -> str:
    """Format a paired difference: with its interval only where 2 or more seeds give one."""
    if n == 0:
        return 'no seed shared with A'
    if n == 1:
        return f'{mean:+.4f} (n=1: no interval)'
    return f'{mean:+.4f} [{low:+.4f}, {high:+.4f}] n={n}'


def summarize(scores: dict) -> list:
    """Table rows: mean ± sd of each metric, the paired difference to A, thin-class IoU."""
    rows = []
    for name, seeds in scores.items():
        runs = list(seeds.values())
        if not runs:
            continue
        row = {'row': name, 'seeds': len(runs)}
        for key in ('miou', 'tc', 'flicker'):
            values = [r[key] for r in runs]
            sd = statistics.stdev(values) if len(values) > 1 else 0.0
            row[key] = f'{statistics.mean(values):.4f} ± {sd:.4f}'
            if name not in ('A', 'teacher') and 'A' in scores:
                row[f'{key} - A (95% CI)'] = difference_text(
                    *paired_difference(seeds, scores['A'], key))
        for cls in THIN:
            row[cls] = f'{statistics.mean(r["per_class_iou"][cls] for r in runs):.3f}'
        rows.append(row)
    return rows


def in_order(scores: dict) -> dict:
    """Return the rows that have runs, A to E, then the teacher, with their seeds in order."""
    return {row: dict(sorted(scores[row].items(), key=lambda kv: int(kv[0])))
            for row in (*ROWS, 'teacher') if scores.get(row)}


def write_results(path: Path, args, scores: dict, teacher_sha: str):
    """Write the runs finished so far in the issue's schema."""
    rows = {row: {'seeds': seeds} for row, seeds in in_order(scores).items()}
    tmp = path.with_name(path.name + '.tmp')
    tmp.write_text(json.dumps({'protocol': __doc__.split('Run from')[0].strip(),
                               'config': args.config, 'steps': args.steps,
                               'split': args.split, 'teacher': str(args.teacher),
                               'teacher_sha256': teacher_sha, 'set': args.set,
                               'rows': rows}, indent=2))
    os.replace(tmp, path)   # a reader never sees half a file


@contextmanager
def locked(path: Path):
    """Hold an exclusive lock beside ``path`` (two protocol processes may share one JSON)."""
    with open(path.with_name(path.name + '.lock'), 'w') as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def record(path: Path, args, out: Path, scores: dict, teacher_sha: str):
    """
    Write ``scores`` into the JSON at ``path``, and keep what others wrote there.

    Runs that another protocol process (other ``--rows``, same command and teacher) recorded
    meanwhile are merged in, not overwritten.
    """
    with locked(path):
        for row, seeds in recorded_runs(path, args, out, teacher_sha, quiet=True).items():
            for seed, run in seeds.items():
                scores.setdefault(row, {}).setdefault(seed, run)
        write_results(path, args, scores, teacher_sha)


def main():
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
    args = parser.parse_args()
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
    shared = [f'--set={s}' for s in args.set + [f'evaluation.split={args.split}']]
    planned = [(row, str(seed)) + command(row, seed, args, out) for row in rows
               for seed in range(args.seeds or ROWS[row][3])]
    threads = max(1, (os.cpu_count() or 1) // args.jobs) if args.jobs > 1 else None
    name = args.name or ('unlabeled_ablation' + ('_tune' if args.split == 'tune' else ''))
    path = Path(args.results) / f'{name}.json'
    path.parent.mkdir(parents=True, exist_ok=True)
    teacher_sha = file_sha256(args.teacher)
    # Every view rendered up front on all cores: on a fresh machine a run on 400 unlabeled
    # streets would otherwise render nearly every frame it draws inside a training step.
    began = time.monotonic()
    rendered = warm_render_cache(load_config(args.config, args.set).data,
                                 eval_split=args.split, workers=os.cpu_count() or 1)
    print(f'render cache: {rendered} frames rendered in {time.monotonic() - began:.0f} s')
    scores = {row: {} for row in rows}
    scores.update(recorded_runs(path, args, out, teacher_sha))
    if not scores.get('teacher'):
        teacher = score(args.teacher, out / 'teacher.json', args.config, shared)
        scores['teacher'] = {'0': {k: teacher[k] for k in KEEP}}
    lock = threading.Lock()

    def train(plan):
        row, seed, run_dir, cmd = plan
        if seed in scores[row]:
            print(f'{row}, seed {seed}: recorded in {path}, not trained again')
            return
        r = train_and_score(cmd, run_dir, args.config, shared, threads)
        # Where it ran (eval.json's torch device): rows may mix machines, the reader should see.
        run = {**{k: r[k] for k in KEEP}, 'device': r.get('device'), 'command': shown(cmd)}
        if ROWS[row][1] is not None:
            run['teacher_sha256'] = teacher_sha
        with lock:   # every finished run goes into the JSON at once: a killed session keeps it
            scores[row][seed] = run
            record(path, args, out, scores, teacher_sha)

    record(path, args, out, scores, teacher_sha)
    with ThreadPoolExecutor(args.jobs) as pool:
        list(pool.map(train, planned))
    columns = ['row', 'seeds', 'miou', 'miou - A (95% CI)', 'tc', 'tc - A (95% CI)', 'flicker',
               'flicker - A (95% CI)', *THIN]
    emit(name + '_table', summarize(in_order(scores)), columns, args.results)
    print(f'wrote {path}\n\nEach run alone:')
    for row, seed, _, cmd in planned:
        print(f'{row}, seed {seed}: {shown(cmd)}')


if __name__ == '__main__':
    main()
