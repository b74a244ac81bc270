"""Run `stkd` training commands on a tiny synthetic config, as a user would."""

import os
from pathlib import Path
import signal
import subprocess
import sys
import time

ROOT = Path(__file__).resolve().parents[1]
CONFIG = str(ROOT / 'config' / 'distill' / 'synthetic.yaml')
TINY = ['data.crop_size=[64,128]', 'data.eval_size=[64,128]', 'data.scale_range=[0.8,1.2]',
        'data.synthetic.height=64', 'data.synthetic.width=128', 'data.synthetic.frames=6',
        'data.synthetic.train_clips=4', 'data.synthetic.val_clips=2',
        'data.synthetic.keys_per_clip=2', 'data.synthetic.unlabeled_clips=2',
        'train.batch_size=2', 'train.workers=0',
        'train.warmup_steps=2', 'train.log_every=2', 'student.arch=bisenet_lite']


def _cmd(command, out, steps, extra=()):
    args = [sys.executable, '-m', 'stkd_ros.cli', command, '--config', CONFIG, '--out', str(out),
            '--steps', str(steps)]
    for item in TINY + list(extra):
        args += ['--set', item]
    return args


def synth_bag(out, frames: int, size: str, seed: int = 9) -> Path:
    """Record a synthetic drive of one clip with `stkd synth --bag`; return the bag's path."""
    subprocess.run([sys.executable, '-m', 'stkd_ros.cli', 'synth', '--out', str(out),
                    '--clips', '1', '--frames', str(frames), '--size', size, '--seed', str(seed),
                    '--bag'], check=True, capture_output=True)
    return Path(out) / 'bag'


def kill_after_frames(args, out, frames: int = 5, timeout: float = 120):
    """Start a labeling command into ``out``; kill it once ``frames`` label files are there."""
    proc = subprocess.Popen(list(args) + ['--out', str(out)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + timeout
    while len(list(Path(out).glob('labels/*/*.png'))) < frames and time.monotonic() < deadline:
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
