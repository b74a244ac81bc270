"""The distillation task: where gradients go, the discriminator's own step, the flow cache."""

import csv
import subprocess

from cli_helpers import _cmd
import numpy as np
import pytest
from stkd_ros.config import ConfigError, DistillConfig, DistillWeights, load_config
from stkd_ros.flow import build_flow
from stkd_ros.flow.cache import FlowCache
from stkd_ros.losses.pixel import pixel_kd
from stkd_ros.models import build_model
from stkd_ros.training.distill_task import DistillationTask
import torch

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def _batch(n=2, k=5, h=64, w=128):
    torch.manual_seed(0)
    labels = torch.randint(0, k, (n, 2, h, w))
    labels[:, 1] = 255   # only the key frame is labeled, as on real datasets
    return {'frames': torch.randn(n, 2, 3, h, w), 'labels': labels,
            'flows': torch.randn(n, 1, 2, h, w)}


def _task(flow_source='given', **weights):
    """Build a task with the default weights but those given; flow is only checked as given."""
    torch.manual_seed(0)
    student = build_model('bisenet_lite', 5)
    teacher = build_model('teacher', 5, size='tiny')
    cfg = DistillConfig(weights=DistillWeights(**weights))
    return DistillationTask(student, teacher, 5, cfg, MEAN, STD, flow_source)


@pytest.fixture
def task():
    return _task(pixel_branches=0.5, pairwise_branches=0.5)


def test_every_term_is_logged_and_gradients_reach_only_the_student(task):
    out = task(_batch())
    for term in ('ce', 'kd_pixel', 'kd_pixel_branches', 'kd_pairwise', 'kd_pairwise_branches',
                 'temporal', 'temporal_kd', 'adversarial'):
        assert term in out and torch.isfinite(out[term]), term
    out['loss'].backward()
    grads = [p.grad for p in task.model.parameters()]
    assert all(g is not None for g in grads) and sum(g.abs().sum() for g in grads) > 0
    assert all(p.grad is None for p in task.teacher.parameters())
    assert not any(p.requires_grad for p in task.teacher.parameters())
    assert 'teacher' not in dict(task.named_children())    # not trained, not checkpointed
    assert not any(k.startswith('teacher') for k in task.state_dict())


def test_the_discriminator_sees_nothing_on_crop_padding(task):
    batch = _batch()
    batch['valid'] = torch.ones(2, 64, 128, dtype=torch.bool)
    batch['valid'][:, :, 100:] = False
    task(batch)
    for pair in task._judged:
        assert (pair[..., 100:] == 0).all() and (pair[..., :100] > 0).all()


def test_pseudo_labels_are_the_teachers_classes_on_frames_without_labels():
    task = _task(None, pseudo_label=1.0, pixel=0, pairwise=0, temporal=0, temporal_kd=0,
                 adversarial=0)
    batch = _batch()           # frame 0 labeled, frame 1 not
    batch['valid'] = torch.ones(2, 64, 128, dtype=torch.bool)
    batch['valid'][:, :, 120:] = False
    teacher = torch.randn(4, 5, 64, 128)
    targets = task._pseudo_labels(teacher, batch['labels'], torch.cat([batch['valid']] * 2))
    assert (targets[:2] == 255).all()                              # labeled frames: their own
    assert torch.equal(targets[2:, :, :120], teacher[2:].argmax(1)[:, :, :120])
    assert (targets[2:, :, 120:] == 255).all()                     # padding
    out = task(batch)
    assert set(out) == {'loss', 'ce', 'pseudo_label', 'output'} and out['pseudo_label'] > 0


def test_soft_targets_at_a_logit_stride_compare_pooled_maps():
    task = _task(None, pixel=1.0, pairwise=0, temporal=0, temporal_kd=0, adversarial=0)
    task.cfg.logit_stride = 8
    task.eval()
    batch = _batch()
    with torch.no_grad():
        out = task(batch)
        both = torch.cat([batch['frames'][:, 0], batch['frames'][:, 1]])
        pooled = [torch.nn.functional.avg_pool2d(m(both)['logits'], 8)
                  for m in (task.model, task.teacher)]
    torch.testing.assert_close(out['kd_pixel'], pixel_kd(*pooled))


def test_teacher_stays_in_eval_mode(task):
    task.train()
    assert task.model.training and not task.teacher.training


def test_a_discriminator_step_leaves_the_student_unchanged(task):
    task.start_training(lambda step: 1.0, amp=False)
    task(_batch())
    before = {k: v.clone() for k, v in task.model.state_dict().items()}
    d_before = [p.detach().clone() for p in task.discriminator.parameters()]
    logged = task.after_step()
    assert set(logged) == {'d_loss', 'd_lr'} and float(logged['d_lr']) == pytest.approx(4e-4)
    after = task.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert all(p.grad is None for p in task.model.parameters())
    assert any(not torch.equal(a, b.detach())
               for a, b in zip(d_before, task.discriminator.parameters()))


def test_the_discriminator_state_resumes_with_the_task(task):
    task.start_training(lambda step: 0.5, amp=False)
    task(_batch())
    task.after_step()
    state = task.state_dict()
    resumed = _task()
    resumed.start_training(lambda step: 0.5, amp=False)
    resumed.load_state_dict(state)
    moments = [s['exp_avg'] for s in resumed._d_step[0].state_dict()['state'].values()]
    expected = [s['exp_avg'] for s in task._d_step[0].state_dict()['state'].values()]
    assert moments and all(torch.equal(a, b) for a, b in zip(moments, expected))
    assert resumed._d_step[1].last_epoch == 1


@pytest.mark.skipif(not torch.cuda.is_available(), reason='AMP needs CUDA')
def test_the_discriminator_step_under_amp_scales_its_gradients():
    task = _task().cuda()
    task.start_training(lambda step: 1.0, amp=True)
    batch = {k: v.cuda() for k, v in _batch().items()}
    with torch.autocast('cuda'):
        task(batch)
    scaler = task._d_step[2]
    assert scaler.is_enabled() and scaler.get_scale() > 1
    before = [p.detach().clone() for p in task.discriminator.parameters()]
    logged = task.after_step()
    assert torch.isfinite(logged['d_loss'])
    assert any(not torch.equal(a, b.detach())
               for a, b in zip(before, task.discriminator.parameters()))


def test_terms_switch_off_one_by_one():
    off = {'pixel': 0, 'pairwise': 0, 'temporal': 0, 'temporal_kd': 0, 'adversarial': 0}
    task = _task(None, **off)
    assert task.discriminator is None and task.flow_source is None
    # Cross-entropy alone has nothing to learn on an unlabeled frame; any other term has.
    assert not task.learns_from_unlabeled
    assert _task(**{**off, 'temporal': 3.0}).learns_from_unlabeled
    batch = _batch()
    del batch['flows']
    out = task(batch)
    assert set(out) == {'loss', 'ce', 'output'}
    assert task.after_step() == {}
    with pytest.raises(ValueError, match='needs optical flow'):
        _task(None)


@pytest.mark.parametrize('override', [
    'distill.weights.pixel=-1', 'distill.temperature=0', 'distill.grid=[8]',
    'distill.discriminator.lr=0', 'distill.flow.photometric_threshold=-0.1',
])
def test_distill_settings_are_checked_when_the_config_is_read(override):
    key = override.split('=')[0]
    with pytest.raises(ConfigError, match=f'config: {key}: expected'):
        load_config(None, [override])


def test_without_a_term_that_compares_frames_a_step_takes_one_frame_per_sample():
    task = _task(None, temporal=0, temporal_kd=0, adversarial=0)
    assert task.frames_needed == 1 and task.learns_from_unlabeled
    batch = {k: v[:, :1] for k, v in _batch().items() if k != 'flows'}
    out = task(batch)
    assert {'ce', 'kd_pixel', 'kd_pairwise'} <= set(out) and out['output'].shape[0] == 2
    assert _task().frames_needed == 2


def test_channel_kd_is_a_term_of_its_own():
    task = _task(None, pixel=0, channel=2.0, pairwise=0, temporal=0, temporal_kd=0,
                 adversarial=0)
    out = task(_batch())
    assert set(out) == {'loss', 'ce', 'kd_channel', 'output'}
    assert out['kd_channel'] > 0
    out['kd_channel'].backward()
    assert sum(p.grad.abs().sum() for p in task.model.parameters() if p.grad is not None) > 0
    assert all(p.grad is None for p in task.teacher.parameters())


def test_flow_cache_returns_what_was_computed(tmp_path, small_world):
    clip = small_world.clip(0, length=2, gap=2)
    dis = build_flow('dis')
    cache = FlowCache(tmp_path, dis, 'synthetic|test')
    first = cache.between(clip, 0, 1, gap=2)
    again = cache.between(clip, 0, 1, gap=2)
    assert (cache.misses, cache.hits) == (1, 1)
    np.testing.assert_allclose(again, first, atol=0.07)           # stored as float16
    np.testing.assert_allclose(again, dis.between(clip, 0, 1), atol=0.07)
    assert cache.path(clip.name, 2, 0, 1) != cache.path(clip.name, 3, 0, 1)
    other = FlowCache(tmp_path, build_flow('dis', preset='fast'), 'synthetic|test')
    assert other.path(clip.name, 2, 0, 1) != cache.path(clip.name, 2, 0, 1)
    cache.path(clip.name, 2, 0, 1).write_bytes(b'damaged')
    np.testing.assert_allclose(cache.between(clip, 0, 1, gap=2), first, atol=0.07)
    assert cache.misses == 2


@pytest.mark.slow
def test_stkd_distill_runs_the_full_method(tmp_path):
    subprocess.run(_cmd('train-teacher', tmp_path / 't', 2, ['train.eval_every=2']),
                   check=True, capture_output=True)
    # Warm-up longer than the run: the discriminator's rate must follow the student's factor.
    args = _cmd('distill', tmp_path / 'd', 2, [
        'train.eval_every=2', 'distill.flow.method=dis', 'distill.flow.args={preset: fast}',
        f'distill.flow.cache={tmp_path / "flows"}', 'train.warmup_steps=4'])
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
