"""Training commands: resume after SIGKILL, torchrun on CPU, one-line config errors."""

import csv
import os
from pathlib import Path
import signal
import socket
import subprocess
import sys
import time

from cli_helpers import _cmd
import pytest
from safetensors.torch import load_file
from stkd_ros.models import build_model
from stkd_ros.training.tasks import SupervisedTask
import torch


def _val_rows(out):
    with open(Path(out) / 'metrics.csv', newline='') as f:
        return [r for r in csv.DictReader(f) if r['tag'].startswith('val/')
                and r['tag'] != 'val/ms_per_frame' and r['tag'] != 'val/fps']


@pytest.mark.slow
def test_sigkill_then_resume_ends_like_an_unbroken_run(tmp_path):
    steps, extra = 24, ['train.checkpoint_every=4', 'train.eval_every=12']
    subprocess.run(_cmd('train-student', tmp_path / 'whole', steps, extra), check=True,
                   capture_output=True)

    broken = tmp_path / 'broken'
    proc = subprocess.Popen(_cmd('train-student', broken, steps, extra),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not (broken / 'last.ckpt').exists() and time.time() < deadline:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL
    assert not (broken / 'model.safetensors').exists(), 'the run ended before it was killed'
    subprocess.run(_cmd('train-student', broken, steps, extra), check=True, capture_output=True)

    a = load_file(str(tmp_path / 'whole' / 'model.safetensors'))
    b = load_file(str(broken / 'model.safetensors'))
    assert a.keys() == b.keys()
    assert all((a[k] == b[k]).all() for k in a), 'resumed weights differ from an unbroken run'
    assert _val_rows(tmp_path / 'whole') == _val_rows(broken)


@pytest.mark.slow
def test_teacher_trains_with_both_branches_supervised(tmp_path):
    subprocess.run(_cmd('train-teacher', tmp_path / 't', 2, ['train.eval_every=2']),
                   check=True, capture_output=True)
    with open(tmp_path / 't' / 'metrics.csv', newline='') as f:
        rows = list(csv.DictReader(f))
    tags = {r['tag'] for r in rows}
    assert {'train/ce', 'train/ce_cnn', 'train/ce_transformer', 'val/miou', 'val/tc'} <= tags
    logged = {r['tag'][6:]: float(r['value']) for r in rows
              if r['step'] == '2' and r['tag'].startswith('train/')}
    # What was optimized: the fused output's loss plus 0.4 (train.aux_weight) of each branch's.
    assert logged['loss'] == pytest.approx(
        logged['ce'] + 0.4 * (logged['ce_cnn'] + logged['ce_transformer']), rel=1e-4)
    for name in ('config.yaml', 'last.ckpt', 'model.safetensors'):
        assert (tmp_path / 't' / name).is_file()
    assert list((tmp_path / 't').glob('events.out.tfevents.*'))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_torchrun_two_processes_on_cpu_with_gloo(tmp_path):
    out = tmp_path / 'ddp'
    launcher = [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node', '2',
                '--master_port', str(_free_port()), '-m']
    args = launcher + _cmd('train-student', out, 4, ['train.eval_every=4'])[2:]
    env = {**os.environ, 'OMP_NUM_THREADS': '1'}
    res = subprocess.run(args, capture_output=True, text=True, env=env, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    assert 'rank 1 of 2 joined (gloo)' in res.stderr
    assert (out / 'model.safetensors').is_file()


@pytest.mark.parametrize('override,message', [
    ('train.stpes=3', 'config: train.stpes: unknown key'),
    ('train.lr=fast', "config: train.lr: expected float, got 'fast'"),
    ('data.dataset=kitti', "data.dataset: unknown dataset 'kitti'"),
    ('train.optimizer=adam', "train.optimizer: unknown optimizer 'adam'"),
    ('evaluation.split=test', "evaluation.split: unknown split 'test'"),
    ('evaluation.flow=pwc', "evaluation.flow: unknown flow method 'pwc'"),
    ('distill.flow.method=pwc', "distill.flow.method: unknown flow method 'pwc'"),
    ('train.device=gpu', "train.device: unknown device 'gpu'"),
])
def test_config_mistakes_are_one_line_errors(tmp_path, override, message):
    res = subprocess.run(_cmd('train-student', tmp_path / 'x', 1, [override]),
                         capture_output=True, text=True)
    assert res.returncode == 2
    last = res.stderr.strip().splitlines()[-1]
    assert last.startswith('stkd train-student: error:') and message in last


def test_the_teachers_loss_is_the_fused_loss_plus_the_branches_at_aux_weight():
    torch.manual_seed(0)
    teacher = build_model('teacher', 5, size='tiny')
    batch = {'frames': torch.randn(2, 1, 3, 64, 96), 'labels': torch.randint(0, 5, (2, 1, 64, 96))}
    with torch.no_grad():
        out = SupervisedTask(teacher, aux_weight=0.25)(batch)
        plain = SupervisedTask(teacher, aux_weight=0.0)(batch)
    torch.testing.assert_close(out['loss'], out['ce'] + 0.25 * (out['ce_cnn']
                                                                + out['ce_transformer']))
    torch.testing.assert_close(plain['loss'], out['ce'])
    assert out['ce_cnn'] != out['ce'] != out['ce_transformer']
