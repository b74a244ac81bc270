"""
Demo-scale pilot: whether distilling beats labels only at `make demo`'s size and schedule.

`make demo` must show the distilled student above the baseline on mIoU and below it on
flicker in minutes (issue 33). This runs the demo's models with its settings (`demo_plan(True)`
of `stkd demo`: 96x192, 120 unlabeled streets, students 200 steps) on the 32 tuning
streets, never the demo's held-out ones, for a teacher schedule given on the command line,
one seed, one torch thread. Each run appends its figures and the seconds of the training
(`train_models` of `stkd demo`, so the pilot trains exactly as the demo does) to
experiments/results/demo_pilot.json. Its first two runs distilled from a label store, as the
demo then did (their entries name the store's scales and label mIoU).

  python -m experiments.demo_pilot --out runs/demo_pilot/t400 --teacher-steps 400
"""

import argparse
import json
from pathlib import Path
import shlex
import subprocess
import time

from stkd_ros.commands.demo import CONFIG, demo_plan, train_models
from stkd_ros.training.commands import evaluate_model
import torch

RESULTS = Path(__file__).resolve().parent / 'results' / 'demo_pilot.json'


def settings(out: Path) -> list:
    """Return the `--set`s of every run: the demo's, on the tuning streets."""
    return demo_plan(True)['overrides'] + [
        f'data.synthetic.render_cache={out.parent / "render_cache"}',
        'data.synthetic.tune_clips=32', 'evaluation.split=tune']


def commands() -> list:
    """
    Return the `stkd` commands that train and score what a pilot run does, as shown.

    The pilot calls `stkd demo`'s train_models and evaluate_model in its own process; these
    are the same calls as commands (the default schedule, --out runs/demo_pilot/t400).
    """
    out, plan = Path('runs/demo_pilot/t400'), demo_plan(True)
    sets = [f'--set={s}' for s in settings(out)]
    teacher = out / 'teacher' / 'model.safetensors'
    runs = [('train-teacher', 'teacher', plan['teacher_steps'], []),
            ('train-student', 'baseline', plan['student_steps'], []),
            ('distill', 'distilled', plan['student_steps'], ['--teacher', str(teacher)])]
    return [shlex.join(['stkd', name, *extra, '--config', str(CONFIG), '--out',
                        str(out / model), '--steps', str(steps), *sets])
            for name, model, steps, extra in runs] + [
        shlex.join(['stkd', 'evaluate', '--model', str(out / model / 'model.safetensors'),
                    '--config', str(CONFIG), *sets]) for _, model, _, _ in runs]


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--out', required=True)
    parser.add_argument('--teacher-steps', type=int, default=400)
    parser.add_argument('--student-steps', type=int, default=200)
    args = parser.parse_args()
    torch.set_num_threads(1)
    out, plan = Path(args.out), demo_plan(True)
    sets = settings(out)
    plan['teacher_steps'], plan['student_steps'] = args.teacher_steps, args.student_steps
    start = time.perf_counter()
    models = train_models(out, plan, sets)
    seconds = round(time.perf_counter() - start)
    scores = {name: {k: round(v[k], 4) for k in ('miou', 'flicker', 'tc')}
              for name, v in ((n, evaluate_model(p, CONFIG, None, sets))
                              for n, p in models.items())}
    commit = subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], capture_output=True,
                            text=True).stdout.strip()
    record = {'teacher_steps': args.teacher_steps, 'student_steps': args.student_steps,
              'split': 'tune', 'seed': 0, 'commit': commit, 'seconds': seconds, **scores}
    runs = json.loads(RESULTS.read_text()) if RESULTS.exists() else []
    RESULTS.write_text(json.dumps(runs + [record], indent=1) + '\n')
    print(json.dumps(record))


if __name__ == '__main__':
    main()
