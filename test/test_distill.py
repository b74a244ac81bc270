"""The distillation task: where gradients go, the discriminator's own step, the flow cache."""

import csv
from functools import partial
import subprocess

from cli_helpers import _cmd, CONFIG
import numpy as np
import pytest
from stkd_ros.config import ConfigError, DistillConfig, DistillWeights, load_config
from stkd_ros.errors import InputError
from stkd_ros.flow import build_flow
from stkd_ros.flow.cache import FlowCache
from stkd_ros.models import build_model
from stkd_ros.training.commands import distill
from stkd_ros.training.data_needs import data_needs, DataNeeds
from stkd_ros.training.distill_task import DistillationTask
from stkd_ros.training.updates import Update
import torch


def _batch(n=2, k=5, h=64, w=128):
    torch.manual_seed(0)
    labels = torch.randint(0, k, (n, 2, h, w))
    labels[:, 1] = 255   # only the key frame is labeled, as on real datasets
    return {'frames': torch.randn(n, 2, 3, h, w), 'labels': labels,
            'flows': torch.randn(n, 1, 2, h, w), 'visible': torch.rand(n, h, w) > 0.2}


FULL_SETS = [f'distill.weights.{k}={v}' for k, v in DistillWeights.FULL_METHOD.items()]


def _task(**weights):
    """Build a task with the full method's weights but those given."""
    torch.manual_seed(0)
    student = build_model('bisenet_lite', 5)
    teacher = build_model('teacher', 5, size='tiny')
    weights = DistillWeights(**{**DistillWeights.FULL_METHOD, **weights})
    return DistillationTask(student, teacher, 5, DistillConfig(weights=weights))


@pytest.fixture
def task():
    return _task()


def _updates(task, amp=False, device_type='cpu'):
    """Return the student's SGD and the task's own updates, at a constant rate factor 1."""
    make = partial(Update, lr_factor=lambda step: 1.0, amp=amp, device_type=device_type)
    return {'model': make(torch.optim.SGD(task.trainable_parameters(), lr=0.01)),
            **task.own_updates(make)}


def _needs(**weights):
    """Return what a distillation run with the full method's weights but those given needs."""
    weights = {**DistillWeights.FULL_METHOD, **weights}
    sets = [f'distill.weights.{k}={v}' for k, v in weights.items()]
    return data_needs(load_config(None, sets + ['data.synthetic.unlabeled_clips=2']),
                      distill=True)


TERMS = ('ce', 'kd_pixel', 'kd_pairwise', 'temporal', 'temporal_kd', 'adversarial')


def test_every_term_is_logged_and_gradients_reach_only_the_student(task):
    out = task(_batch())
    for term in TERMS:
        assert term in out and torch.isfinite(out[term]) and out[term] > 0, term
    out['loss'].backward()
    grads = [p.grad for p in task.model.parameters()]
    assert all(g is not None for g in grads) and sum(g.abs().sum() for g in grads) > 0
    assert all(p.grad is None for p in task.teacher.parameters())
    assert not any(p.requires_grad for p in task.teacher.parameters())
    assert set(task.trainable_parameters()) == set(task.model.parameters())


#: Each weight of distill.weights and the term it weighs, as the loss dict names it.
WEIGHTED_TERMS = [('ce', 'ce'), ('pseudo_label', 'pseudo_label'), ('pixel', 'kd_pixel'),
                  ('pairwise', 'kd_pairwise'), ('temporal', 'temporal'),
                  ('temporal_kd', 'temporal_kd'), ('adversarial', 'adversarial')]


@pytest.mark.parametrize('weight,term', WEIGHTED_TERMS)
def test_a_weight_scales_its_own_term_in_the_loss_and_not_in_the_log(weight, term):
    batch = _batch()          # frame 1 has no label: pseudo-labels teach there
    with torch.no_grad():
        one = _task(**{'pseudo_label': 1.0, weight: 1.0})(batch)
        three = _task(**{'pseudo_label': 1.0, weight: 3.0})(batch)
        off = _task(**{'pseudo_label': 1.0, weight: 0.0})(batch)
    assert term not in off and set(one) == set(off) | {term}
    logged = [k for k in one if k not in ('loss', 'output')]
    assert all(torch.equal(three[k], one[k]) for k in logged)            # logged unweighted
    torch.testing.assert_close(three['loss'] - one['loss'], 2 * one[term])
    torch.testing.assert_close(one['loss'] - off['loss'], one[term])


def test_the_discriminator_sees_nothing_on_crop_padding(task):
    batch = _batch()
    batch['valid'] = torch.ones(2, 64, 128, dtype=torch.bool)
    batch['valid'][:, :, 100:] = False
    _, pairs = task.losses(batch)
    for pair in pairs:
        assert (pair[..., 100:] == 0).all() and (pair[..., :100] > 0).all()


def test_pseudo_labels_are_the_teachers_classes_on_frames_without_labels():
    task = _task(pseudo_label=1.0, pixel=0, pairwise=0, temporal=0, temporal_kd=0,
                 adversarial=0)
    batch = _batch()           # frame 0 labeled, frame 1 not
    batch['valid'] = torch.ones(2, 64, 128, dtype=torch.bool)
    batch['valid'][:, :, 120:] = False
    teacher = torch.randn(4, 5, 64, 128)
    targets = task._pseudo_labels(teacher.argmax(1), batch['labels'],
                                  torch.cat([batch['valid']] * 2))
    assert (targets[:2] == 255).all()                              # labeled frames: their own
    assert torch.equal(targets[2:, :, :120], teacher[2:].argmax(1)[:, :, :120])
    assert (targets[2:, :, 120:] == 255).all()                     # padding
    out = task(batch)
    assert set(out) == {'loss', 'ce', 'pseudo_label', 'output'} and out['pseudo_label'] > 0


def test_teacher_stays_in_eval_mode(task):
    task.train()
    assert task.model.training and not task.teacher.training


def test_one_step_updates_the_student_then_the_discriminator_on_detached_pairs():
    task, alone = _task(), _task()
    batch = _batch()
    logged = task.training_step(batch, _updates(task))
    assert {'loss', 'd_loss', 'd_lr'} <= set(logged)
    assert float(logged['d_lr']) == pytest.approx(4e-4)
    # The student's step alone, on a twin: the same student, the same gradients.
    _updates(alone)['model'].step(alone(batch)['loss'])
    for a, b in zip(task.model.parameters(), alone.model.parameters()):
        assert torch.equal(a, b) and torch.equal(a.grad, b.grad)
    # The discriminator moved, on its own loss: only its step zeroes what the student's
    # loss gave it.
    assert any(not torch.equal(a, b) for a, b in zip(task.discriminator.parameters(),
                                                     alone.discriminator.parameters()))
    assert all(p.grad is None for p in task.teacher.parameters())


def test_the_discriminators_weights_resume_with_the_task(task):
    task.training_step(_batch(), _updates(task))
    resumed = _task()
    resumed.load_training_state(task.training_state())
    for a, b in zip(resumed.discriminator.parameters(), task.discriminator.parameters()):
        assert torch.equal(a, b)
    with pytest.raises(ValueError, match='disagree on the discriminator'):
        _task(adversarial=0).load_training_state(task.training_state())


@pytest.mark.skipif(not torch.cuda.is_available(), reason='AMP needs CUDA')
def test_the_discriminator_step_under_amp_scales_its_gradients():
    task = _task().cuda()
    updates = _updates(task, amp=True, device_type='cuda')
    scaler = updates['discriminator'].scaler
    assert scaler.is_enabled() and scaler.get_scale() > 1
    before = [p.detach().clone() for p in task.discriminator.parameters()]
    logged = task.training_step({k: v.cuda() for k, v in _batch().items()}, updates)
    assert torch.isfinite(logged['d_loss'])
    assert any(not torch.equal(a, b.detach())
               for a, b in zip(before, task.discriminator.parameters()))


def test_terms_switch_off_one_by_one():
    off = {'pixel': 0, 'pairwise': 0, 'temporal': 0, 'temporal_kd': 0, 'adversarial': 0}
    task = _task(**off)
    assert task.discriminator is None and task.own_updates(None) == {}
    # Cross-entropy alone has nothing to learn on an unlabeled frame; any other term has.
    assert _needs(**off) == DataNeeds(frames=1)
    temporal = _needs(**{**off, 'temporal': 3.0})
    assert temporal.unlabeled and temporal.frames == 2 and temporal.flow is not None
    batch = _batch()
    del batch['flows'], batch['visible']
    out = task.training_step(batch, _updates(task))
    assert set(out) == {'loss', 'ce', 'output'} and task.training_state() == {}


def test_the_temporal_term_counts_only_the_visible_pixels():
    task = _task(pixel=0, pairwise=0, temporal_kd=0, adversarial=0)
    batch = _batch()
    with torch.no_grad():
        everywhere = task(batch)['temporal']
        batch['visible'][:, :, 64:] = False
        left = task(batch)['temporal']
        s = task.model(torch.cat(batch['frames'].unbind(1)))['logits']
    from stkd_ros.losses.temporal import motion_consistency
    expected = motion_consistency(s[:2], s[2:], batch['flows'][:, 0], batch['visible'])
    torch.testing.assert_close(left, expected)
    assert left != everywhere


@pytest.mark.parametrize('override', [
    'distill.weights.pixel=-1', 'distill.temperature=0', 'distill.grid=[8]',
    'distill.discriminator.lr=0', 'distill.flow.photometric_threshold=-0.1',
])
def test_distill_settings_are_checked_when_the_config_is_read(override):
    key = override.split('=')[0]
    with pytest.raises(ConfigError, match=f'config: {key}: expected'):
        load_config(None, [override])


def test_without_a_term_that_compares_frames_a_step_takes_one_frame_per_sample():
    one = _needs(temporal=0, temporal_kd=0, adversarial=0)
    assert one.frames == 1 and one.unlabeled and one.flow is None
    task = _task(temporal=0, temporal_kd=0, adversarial=0)
    batch = {k: v[:, :1] for k, v in _batch().items() if k in ('frames', 'labels')}
    out = task(batch)
    assert {'ce', 'kd_pixel', 'kd_pairwise'} <= set(out) and out['output'].shape[0] == 2
    assert _needs().frames == 2


def test_flow_cache_returns_what_was_computed(tmp_path, small_world):
    clip = small_world.clip(0, length=2, gap=2)
    dis = build_flow('dis')
    cache = FlowCache(tmp_path, dis, 'synthetic|test')
    first = cache.between(clip, 0, 1)
    again = cache.between(clip, 0, 1)
    assert (cache.misses, cache.hits) == (1, 1)
    np.testing.assert_allclose(again, first, atol=0.07)           # stored as float16
    np.testing.assert_allclose(again, dis.between(clip, 0, 1), atol=0.07)
    assert cache.path(clip.name, 2, 0, 1) != cache.path(clip.name, 3, 0, 1)
    other = FlowCache(tmp_path, build_flow('dis', preset='fast'), 'synthetic|test')
    assert other.path(clip.name, 2, 0, 1) != cache.path(clip.name, 2, 0, 1)
    cache.path(clip.name, 2, 0, 1).write_bytes(b'damaged')
    np.testing.assert_allclose(cache.between(clip, 0, 1), first, atol=0.07)
    assert cache.misses == 2


def test_the_default_recipe_is_pseudo_labels_and_needs_unlabeled_video(tmp_path):
    w = DistillWeights()
    assert (w.ce, w.pseudo_label) == (1, 1)
    assert not any((w.pixel, w.pairwise, w.temporal, w.temporal_kd, w.adversarial))
    # Before the teacher is read: the config alone says there is nothing to learn from.
    with pytest.raises(InputError, match='^distill.weights.pseudo_label: no unlabeled video'):
        distill(CONFIG, tmp_path / 'none.safetensors', tmp_path / 'd',
                overrides=['data.synthetic.unlabeled_clips=0'])
    # The full method learns from the labeled clips' unlabeled frames too: no such stop.
    with pytest.raises(FileNotFoundError, match='model file not found'):
        distill(CONFIG, tmp_path / 'none.safetensors', tmp_path / 'd', overrides=[
            'data.synthetic.unlabeled_clips=0',
            *FULL_SETS])


@pytest.mark.slow
def test_stkd_distill_runs_the_full_method(tmp_path):
    subprocess.run(_cmd('train-teacher', tmp_path / 't', 2, ['train.eval_every=2']),
                   check=True, capture_output=True)
    # Warm-up longer than the run: the discriminator's rate must follow the student's factor.
    args = _cmd('distill', tmp_path / 'd', 2, [
        'train.eval_every=2', 'distill.flow.method=dis', 'distill.flow.args={preset: fast}',
        f'distill.flow.cache={tmp_path / "flows"}', 'train.warmup_steps=4',
        *FULL_SETS])
    args += ['--teacher', str(tmp_path / 't' / 'model.safetensors')]
    res = subprocess.run(args, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-2000:]
    with open(tmp_path / 'd' / 'metrics.csv', newline='') as f:
        rows = list(csv.DictReader(f))
    tags = {r['tag'] for r in rows}
    # Logged at step 2, for the second update: 0.0004 x warm-up factor (1 + 1) / 4.
    (d_lr,) = [float(r['value']) for r in rows if r['tag'] == 'train/d_lr']
    assert d_lr == pytest.approx(0.0002)
    for term in ('ce', 'kd_pixel', 'kd_pairwise', 'temporal', 'temporal_kd', 'adversarial',
                 'd_loss'):
        assert f'train/{term}' in tags, term
    assert list((tmp_path / 'flows').rglob('*.npy'))
    bad = _cmd('distill', tmp_path / 'e', 1) + ['--teacher', str(tmp_path / 'nothing')]
    res = subprocess.run(bad, capture_output=True, text=True)
    assert res.returncode == 2 and 'model file not found' in res.stderr
