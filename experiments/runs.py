"""Shared by the experiments: run one training command and score its model, resumably."""

from concurrent.futures import ThreadPoolExecutor
import json
import os
from pathlib import Path
import shlex
import signal
import subprocess
import sys
import threading

#: The `stkd` command of this interpreter.
STKD = [sys.executable, '-m', 'stkd_ros.cli']

_running = set()   # the commands started by run() that have not ended


def run(cmd, log, threads=None):
    """Run ``cmd``, appending its output to ``log``; ``threads`` caps its torch threads."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads)) if threads else None
    # Append: a killed run resumes from its checkpoint and its log keeps the first part.
    Path(log).parent.mkdir(parents=True, exist_ok=True)
    with open(log, 'a') as f:
        child = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, env=env)
        _running.add(child)
        try:
            code = child.wait()
        finally:
            _running.discard(child)
    if code:
        raise subprocess.CalledProcessError(code, cmd)


def stop_runs_on_sigterm():
    """
    Make SIGTERM stop the commands ``run`` started, then this process.

    A run is a child process: without this, killing an experiment (``kill``, a job
    scheduler) leaves its training going. Ctrl-C needs nothing: it reaches the whole group.
    """
    def stop(signum, frame):
        for child in list(_running):
            child.terminate()
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, stop)


def train_and_score(cmd, run_dir, config, shared, threads=None) -> dict:
    """Train one run (unless its model file exists), evaluate it once, return its scores."""
    if not (run_dir / 'model.safetensors').is_file():
        # One write per line: with several jobs, runs start from several threads.
        sys.stdout.write(f"$ {shlex.join(['stkd'] + cmd[len(STKD):])}\n")
        sys.stdout.flush()
        run(cmd, run_dir.with_suffix('.log'), threads)
    return score(run_dir / 'model.safetensors', run_dir / 'eval.json', config, shared, threads)


def score(model, evaluation, config, shared, threads=None) -> dict:
    """Evaluate ``model`` into the JSON file ``evaluation`` unless it exists; return it."""
    if not evaluation.is_file():
        run(evaluate_command(model, evaluation, config, shared), evaluation.with_suffix('.log'),
            threads)
    return json.loads(evaluation.read_text())


def evaluate_command(model, evaluation, config, shared) -> list:
    """Return the `stkd evaluate` command that scores ``model`` into ``evaluation``."""
    return STKD + ['evaluate', '--model', str(model), '--config', config, '--json',
                   str(evaluation)] + shared


def shown(cmd) -> str:
    """Return ``cmd`` as a user types it: `stkd ...`."""
    return shlex.join(['stkd'] + cmd[len(STKD):])


def provenance(threads=None) -> dict:
    """
    Return what a run's figures depend on besides its command.

    The code's commit (``+dirty`` with uncommitted changes to the package or the configs), the
    torch version and the torch threads it trains with.
    """
    root = Path(__file__).resolve().parents[1]

    def git(*args):
        done = subprocess.run(['git', *args], cwd=root, capture_output=True, text=True)
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git('rev-parse', '--short=12', 'HEAD')
    if commit and git('status', '--porcelain', '--untracked-files=no', '--', 'stkd_ros',
                      'config'):
        commit += '+dirty'
    import torch
    return {'commit': commit, 'torch': torch.__version__,
            'threads': threads or int(os.environ.get('OMP_NUM_THREADS', 0))
            or torch.get_num_threads()}


def train_missing(planned, scores: dict, book, run_one, jobs: int):
    """
    Train every planned run that ``scores`` lacks, ``jobs`` at a time; record each at once.

    planned: (row, seed, run_dir, cmd) tuples; scores: {row: {seed: run}}, filled in place;
    book: the protocol's Ledger; run_one(row, seed, run_dir, cmd) trains and scores one run
    and returns what the ledger keeps of it. A run goes into the ledger as soon as it ends,
    so a killed session keeps every finished run.
    """
    lock = threading.Lock()

    def train(plan):
        row, seed = plan[:2]
        if seed in scores[row]:
            print(f'{row}, seed {seed}: recorded in {book.path}, not trained again')
            return
        run = run_one(*plan)
        with lock:
            scores[row][seed] = run
            book.record(scores)

    book.record(scores)
    with ThreadPoolExecutor(jobs) as pool:
        list(pool.map(train, planned))
