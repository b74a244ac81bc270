"""Training commands: resume after SIGKILL, torchrun on CPU, one-line config errors."""

import copy
import csv
from functools import partial
import os
from pathlib import Path
import signal
import socket
import subprocess
import sys
import time

from cli_helpers import _cmd, CONFIG, TINY
import pytest
from safetensors.torch import load_file
from stkd_ros.config import DistillConfig, DistillWeights, load_config
from stkd_ros.data.datasets import build_clips
from stkd_ros.model_file import load_model_file
from stkd_ros.models import build_model
from stkd_ros.training.data_needs import DataNeeds
from stkd_ros.training.distill_task import DistillationTask
from stkd_ros.training.loader import train_loader
from stkd_ros.training.run import seed_everything
from stkd_ros.training.tasks import SupervisedTask
from stkd_ros.training.trainer import (build_optimizer, poly_with_warmup, resume,
                                       save_training_state)
from stkd_ros.training.updates import Update
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


def _one_step_on(model, batch):
    """Return a copy of ``model`` and its gradients after the student's loss on ``batch``."""
    model = copy.deepcopy(model)
    SupervisedTask(model)(batch)['loss'].backward()
    return model, [p.grad for p in model.parameters()]


@pytest.mark.slow
def test_torchrun_two_processes_average_the_gradients_of_their_own_batches(tmp_path):
    out, sets = tmp_path / 'ddp', ['train.eval_every=1', 'train.optimizer=sgd']
    launcher = [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node', '2',
                '--master_port', str(_free_port()), '-m']
    args = launcher + _cmd('train-student', out, 1, sets)[2:]
    env = {**os.environ, 'OMP_NUM_THREADS': '1'}
    res = subprocess.run(args, capture_output=True, text=True, env=env, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    assert 'rank 1 of 2 joined (gloo)' in res.stderr

    threads = torch.get_num_threads()
    torch.set_num_threads(1)       # as each rank ran (OMP_NUM_THREADS): the same sums
    try:
        trained, averaged, alone = _the_step_in_one_process(out, sets)
    finally:
        torch.set_num_threads(threads)
    assert all(torch.equal(value, averaged[key]) for key, value in trained.items())
    # Rank 1's batch moved the weights: a step on rank 0's alone is far from the run's.
    assert max(float((trained[k] - alone[k]).abs().max()) for k in trained) > 1e-3


def _the_step_in_one_process(out, sets):
    """
    Return the run's weights, and those of one step along the ranks' averaged gradients.

    And those of a step along rank 0's alone; each rank's first batch is drawn here, from
    the same start.
    """
    cfg = load_config(CONFIG, TINY + sets + ['train.steps=1'])
    t = cfg.train
    seed_everything(t.seed)
    classes = build_clips(cfg.data, 'val', clip_length=2, gap=1).classes
    model = build_model(cfg.student.arch, len(classes), **cfg.student.args).train()
    batches = [next(iter(train_loader(cfg.data, DataNeeds(), batch_size=t.batch_size,
                                      seed=t.seed, start_step=0, workers=0, rank=rank,
                                      world_size=2))) for rank in (0, 1)]
    assert not torch.equal(batches[0]['frames'], batches[1]['frames'])   # their own data
    (first, grads0), (_, grads1) = (_one_step_on(model, b) for b in batches)

    def stepped(grads):
        """Rank 0's model (its normalization statistics) after an SGD step along ``grads``."""
        stepped = copy.deepcopy(first)
        update = Update(build_optimizer(stepped.parameters(), t), amp=False, device_type='cpu',
                        lr_factor=partial(poly_with_warmup, total=1, warmup=t.warmup_steps,
                                          power=t.poly_power))
        for p, g in zip(stepped.parameters(), grads):
            p.grad = g
        update.optimizer.step()
        return stepped.state_dict()

    trained = load_model_file(out / 'model.safetensors')[0].state_dict()
    return trained, stepped([(a + b) / 2 for a, b in zip(grads0, grads1)]), stepped(grads0)


def test_a_resume_restores_every_update_with_its_gradient_scaler(tmp_path):
    def run():
        torch.manual_seed(0)
        weights = DistillWeights(**DistillWeights.FULL_METHOD)
        task = DistillationTask(build_model('bisenet_lite', 5), build_model('teacher', 5,
                                                                            size='tiny'),
                                5, DistillConfig(weights=weights))
        # AMP is CUDA's in training; a CPU scaler holds the same state.
        make = partial(Update, lr_factor=lambda step: 0.5, amp=True, device_type='cpu')
        updates = {'model': make(torch.optim.SGD(task.trainable_parameters(), lr=0.1)),
                   **task.own_updates(make)}
        return task, updates

    task, updates = run()
    assert set(updates) == {'model', 'discriminator'}
    for scale, update in zip((1024.0, 256.0), updates.values()):
        update.scaler.load_state_dict({**update.scaler.state_dict(), 'scale': scale,
                                       '_growth_tracker': 7})
        update.schedule.last_epoch = 3
    save_training_state(tmp_path / 'last.ckpt', 3, task.model, task, updates)
    resumed_task, resumed = run()
    assert resumed['model'].scaler.get_scale() != 1024.0
    assert resume(tmp_path / 'last.ckpt', resumed_task.model, resumed_task, resumed) == 3
    for name, update in updates.items():
        assert resumed[name].scaler.state_dict() == update.scaler.state_dict(), name
        assert resumed[name].schedule.last_epoch == 3
    assert resumed['model'].scaler.get_scale() == 1024.0


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
