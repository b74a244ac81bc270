"""Distilling from a label store: its classes teach the unlabeled frames, no teacher pass."""

import csv
import subprocess
import sys

from cli_helpers import _cmd, CONFIG, TINY
import numpy as np
import pytest
from stkd_ros.config import DistillConfig, DistillWeights, load_config
from stkd_ros.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from stkd_ros.data.unlabeled import build_unlabeled
from stkd_ros.flow.warp import warp_labels
from stkd_ros.labeling.store import write_truth_store
from stkd_ros.losses.temporal import motion_consistency
from stkd_ros.model_file import load_model_file, save_model_file
from stkd_ros.models import build_model
from stkd_ros.training.data_needs import data_needs, DataNeeds
from stkd_ros.training.distill_task import DistillationTask
from stkd_ros.training.loader import train_loader
from stkd_ros.training.tasks import cross_entropy
import torch

HARD = {'pixel': 0, 'pairwise': 0, 'temporal': 0, 'temporal_kd': 0, 'adversarial': 0,
        'pseudo_label': 1}


def _task(weights, **settings):
    torch.manual_seed(0)
    teacher = build_model('teacher', 5, size='tiny')

    def no_teacher(*args):
        raise AssertionError('the teacher ran in a step the store serves')

    teacher.forward = no_teacher
    cfg = DistillConfig(weights=DistillWeights(**weights), **settings)
    return DistillationTask(build_model('bisenet_lite', 5), teacher, 5, cfg, store_targets=True)


def _batch(n=2, h=32, w=64):
    torch.manual_seed(1)
    labels = torch.full((n, 2, h, w), 255)
    labels[0, 0] = torch.randint(0, 5, (h, w))          # sample 0 labeled, sample 1 not
    targets = torch.randint(0, 5, (n, 2, h, w))
    targets[0] = 255                                   # the store covers the unlabeled clips
    return {'frames': torch.randn(n, 2, 3, h, w), 'labels': labels, 'targets': targets,
            'confidence': torch.rand(n, 2, h, w), 'flows': torch.randn(n, 1, 2, h, w),
            'visible': torch.ones(n, h, w, dtype=torch.bool)}


def test_the_stores_classes_teach_and_the_teacher_never_runs():
    task = _task(HARD, pseudo_label_confidence=0.5)
    assert not task.uses_teacher
    batch = {k: v[:, :1] if v.dim() > 3 and k != 'flows' else v for k, v in _batch().items()}
    out = task(batch)
    with torch.no_grad():
        logits = task.model(batch['frames'][:, 0])['logits']
    sure = torch.where(batch['confidence'][:, 0] >= 0.5, batch['targets'][:, 0],
                       torch.full_like(batch['targets'][:, 0], 255))
    torch.testing.assert_close(out['pseudo_label'], cross_entropy(logits, sure))
    torch.testing.assert_close(out['ce'], cross_entropy(logits, batch['labels'][:, 0]))


@pytest.mark.parametrize('gate', ['confidence', 'agreement'])
def test_a_gate_limits_the_temporal_term_to_the_pixels_it_keeps(gate):
    task = _task({**HARD, 'temporal': 3.0}, temporal_gate=gate, gate_confidence=0.7)
    batch = _batch()
    with torch.no_grad():
        out = task(batch)
        s = task.model(torch.cat(batch['frames'].unbind(1)))['logits']
    flow = batch['flows'][:, 0]
    if gate == 'confidence':
        kept = batch['confidence'][:, 0] >= 0.7
    else:
        t = batch['targets']
        kept = (t[:, 0] == warp_labels(t[:, 1], flow)) & (t[:, 0] != 255)
    assert 0 < kept.float().mean() < 1
    torch.testing.assert_close(out['temporal'], motion_consistency(s[:2], s[2:], flow, kept))


def test_the_store_comes_with_the_unlabeled_frames(tmp_path):
    sets = [f'distill.weights.{k}={v}' for k, v in HARD.items()]
    cfg = load_config(None, WORLD + sets + ['distill.temporal_gate=agreement'])
    cfg.data.labels = str(tmp_path / 'store')
    assert data_needs(cfg, distill=True) == DataNeeds(frames=1, unlabeled=True,
                                                      store=cfg.data.labels)


WORLD = ['data.synthetic.height=32', 'data.synthetic.width=64', 'data.synthetic.frames=6',
         'data.synthetic.unlabeled_clips=2', 'data.synthetic.train_clips=2',
         'data.crop_size=[32,64]', 'data.scale_range=[1.0,1.0]', 'data.gap=[1,2]']


def test_the_loader_gives_each_unlabeled_clip_its_stores_classes(tmp_path):
    cfg = load_config(None, WORLD + [f'data.labels={tmp_path / "truth"}'])
    write_truth_store(tmp_path / 'truth', cfg.data)
    needs = DataNeeds(frames=2, unlabeled=True, store=cfg.data.labels)
    batch = next(iter(train_loader(cfg.data, needs, batch_size=2, seed=3, start_step=0,
                                   workers=0)))
    labeled, unlabeled = slice(0, 2), slice(2, 4)
    assert (batch['targets'][labeled] == 255).all() and (batch['confidence'][labeled] == 0).all()
    assert (batch['labels'][unlabeled] == 255).all()           # still no label of their own
    theirs = batch['targets'][unlabeled]
    assert (batch['confidence'][unlabeled][theirs != 255] == 1.0).all()
    # Find each unlabeled frame in the world (either way round: clips may be flipped); its
    # classes must be the world's labels of that frame, flipped with it.
    streets = build_unlabeled(cfg.data, clip_length=2, gap=(1, 2)).world
    rendered = [streets.frame(i, t)[:2] for i in range(2) for t in range(6)]
    mean = torch.tensor(IMAGENET_MEAN)[:, None, None]
    std = torch.tensor(IMAGENET_STD)[:, None, None]
    for sample in range(2):
        for k in range(2):
            rgb = ((batch['frames'][2 + sample, k] * std + mean) * 255).round().byte()
            rgb = rgb.permute(1, 2, 0).numpy()
            found = [(label[:, ::-1] if flip else label) for image, label in rendered
                     for flip in (False, True)
                     if np.array_equal(image[:, ::-1] if flip else image, rgb)]
            assert len(found) == 1, 'each clip frame is one frame of the world'
            np.testing.assert_array_equal(theirs[sample, k].numpy(), found[0])


@pytest.mark.slow
def test_stkd_distill_learns_from_a_store_and_refuses_the_wrong_one(tmp_path):
    world = ['data.synthetic.unlabeled_clips=2', 'train.eval_every=2']
    subprocess.run(_cmd('train-teacher', tmp_path / 't', 2, world), check=True,
                   capture_output=True)
    teacher = str(tmp_path / 't' / 'model.safetensors')
    label = [sys.executable, '-m', 'stkd_ros.cli', 'label', '--config', CONFIG, '--teacher',
             teacher, '--out', str(tmp_path / 'store')]
    res = subprocess.run(label + [a for s in TINY + world for a in ('--set', s)],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-2000:]
    sets = world + [f'distill.weights.{k}={v}' for k, v in HARD.items()]
    args = _cmd('distill', tmp_path / 'd', 2, sets) + ['--teacher', teacher, '--labels',
                                                       str(tmp_path / 'store')]
    res = subprocess.run(args, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-2000:]
    with open(tmp_path / 'd' / 'metrics.csv', newline='') as f:
        tags = {r['tag'] for r in csv.DictReader(f)}
    assert {'train/ce', 'train/pseudo_label'} <= tags and 'train/kd_pixel' not in tags

    def error(extra_sets=(), teacher_file=teacher):
        bad = _cmd('distill', tmp_path / 'e', 2, sets + list(extra_sets)) + [
            '--teacher', teacher_file, '--labels', str(tmp_path / 'store')]
        res = subprocess.run(bad, capture_output=True, text=True)
        assert res.returncode == 2, res.stderr[-2000:]
        return res.stderr.strip().splitlines()[-1]

    model, meta = load_model_file(teacher)
    torch.nn.init.normal_(next(model.parameters()))         # another teacher, same shape
    save_model_file(tmp_path / 'other.safetensors', model, meta)
    assert 'labeled by another teacher' in error(teacher_file=str(tmp_path / 'other.safetensors'))
    assert 'labels other video' in error(['data.synthetic.seed=5'])
    assert 'lacks 1 sequence(s)' in error(['data.synthetic.unlabeled_clips=3'])
    assert 'no term reads a label store' in error(['distill.weights.pseudo_label=0',
                                                   'distill.weights.pixel=1'])
