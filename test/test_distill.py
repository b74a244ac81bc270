"""The distillation task: where gradients go, the discriminator's own step, the flow cache."""

import csv
import subprocess

from cli_helpers import _cmd
import numpy as np
import pytest
from stkd_ros.config import DistillConfig
from stkd_ros.flow import build_flow
from stkd_ros.flow.cache import FlowCache
from stkd_ros.models import build_model
from stkd_ros.training.distill_task import DistillationTask, ramp_down_factor
import torch

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def _batch(n=2, k=5, h=64, w=128):
    torch.manual_seed(0)
    labels = torch.randint(0, k, (n, 2, h, w))
    labels[:, 1] = 255   # only the key frame is labeled, as on real datasets
    return {'frames': torch.randn(n, 2, 3, h, w), 'labels': labels,
            'flows': torch.randn(n, 1, 2, h, w)}


@pytest.fixture
def task():
    torch.manual_seed(0)
    student = build_model('bisenet_lite', 5)
    teacher = build_model('teacher', 5, size='tiny')
    return DistillationTask(student, teacher, 5, DistillConfig(), MEAN, STD)


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


def test_teacher_stays_in_eval_mode(task):
    task.train()
    assert task.model.training and not task.teacher.training


def test_a_discriminator_step_leaves_the_student_unchanged(task):
    out = task(_batch())
    before = {k: v.clone() for k, v in task.model.state_dict().items()}
    d_before = [p.detach().clone() for p in task.discriminator.parameters()]
    opt = torch.optim.Adam(task.discriminator.parameters(), lr=1e-2)
    d = task.discriminator_loss(out)
    opt.zero_grad()
    d['loss'].backward()
    opt.step()
    after = task.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert all(p.grad is None for p in task.model.parameters())
    assert any(not torch.equal(a, b.detach())
               for a, b in zip(d_before, task.discriminator.parameters()))


def test_terms_switch_off_one_by_one():
    torch.manual_seed(0)
    cfg = DistillConfig(pixel=0, pairwise=0, temporal=0, temporal_kd=0, adversarial=0)
    task = DistillationTask(build_model('bisenet_lite', 5), build_model('teacher', 5), 5, cfg,
                            MEAN, STD)
    assert task.discriminator is None and not task.needs_flow
    # Cross-entropy alone has nothing to learn on an unlabeled frame; any other term has.
    assert not task.learns_from_unlabeled
    assert DistillationTask(build_model('bisenet_lite', 5), build_model('teacher', 5), 5,
                            DistillConfig(**{**cfg.__dict__, 'temporal': 3.0}), MEAN,
                            STD).learns_from_unlabeled
    batch = _batch()
    del batch['flows']
    out = task(batch)
    assert set(out) == {'loss', 'ce', 'output'}
    wgan = DistillationTask(build_model('bisenet_lite', 5), build_model('teacher', 5), 5,
                            DistillConfig(gan='wgan-gp'), MEAN, STD)
    assert 'd_gp' in wgan.discriminator_loss(wgan(_batch()))
    with pytest.raises(ValueError, match='unknown GAN loss'):
        DistillationTask(build_model('bisenet_lite', 5), build_model('teacher', 5), 5,
                         DistillConfig(gan='lsgan'), MEAN, STD)
    with pytest.raises(ValueError, match='temporal_pool'):
        DistillationTask(build_model('bisenet_lite', 5), build_model('teacher', 5), 5,
                         DistillConfig(temporal_pool=0), MEAN, STD)


def test_channel_kd_is_a_term_of_its_own():
    torch.manual_seed(0)
    cfg = DistillConfig(pixel=0, channel=2.0, pairwise=0, temporal=0, temporal_kd=0,
                        adversarial=0)
    task = DistillationTask(build_model('bisenet_lite', 5), build_model('teacher', 5), 5, cfg,
                            MEAN, STD)
    out = task(_batch())
    assert set(out) == {'loss', 'ce', 'kd_channel', 'output'}
    assert out['kd_channel'] > 0
    out['kd_channel'].backward()
    assert sum(p.grad.abs().sum() for p in task.model.parameters() if p.grad is not None) > 0
    assert all(p.grad is None for p in task.teacher.parameters())


def test_pixel_kd_can_skip_pixels_where_the_teacher_misses_the_label():
    pixel_only = {'pairwise': 0, 'temporal': 0, 'temporal_kd': 0, 'adversarial': 0,
                  'pixel_branches': 0}
    torch.manual_seed(0)
    student, teacher = build_model('bisenet_lite', 5), build_model('teacher', 5, size='tiny')
    plain = DistillationTask(student, teacher, 5, DistillConfig(**pixel_only), MEAN, STD)
    masked = DistillationTask(student, teacher, 5, DistillConfig(
        **pixel_only, pixel_skip_teacher_errors=True), MEAN, STD)
    plain.eval(), masked.eval()
    batch = _batch()
    with torch.no_grad():
        # Labels equal to the teacher's own classes: nothing is skipped.
        n = batch['frames'].shape[0]
        both = torch.cat([batch['frames'][:, 0], batch['frames'][:, 1]])
        classes = teacher(both)['logits'].argmax(1)
        agreeing = dict(batch, labels=torch.stack([classes[:n], classes[n:]], 1))
        torch.testing.assert_close(masked(agreeing)['kd_pixel'], plain(agreeing)['kd_pixel'])
        # Random labels: the teacher misses most of them, and those pixels drop out.
        assert not torch.allclose(masked(batch)['kd_pixel'], plain(batch)['kd_pixel'])


def test_ramp_down_fades_every_term_but_cross_entropy():
    assert [ramp_down_factor(s, 100, 0.0, 0.0) for s in (0, 99)] == [1.0, 1.0]
    factors = [ramp_down_factor(s, 100, 0.5, 0.0) for s in range(100)]
    assert factors[:51] == [1.0] * 51 and factors[99] == 0.0
    assert all(a > b for a, b in zip(factors[50:], factors[51:]))      # linear, falling
    assert ramp_down_factor(99, 100, 0.5, 0.2) == pytest.approx(0.2)
    torch.manual_seed(0)
    student, teacher = build_model('bisenet_lite', 5), build_model('teacher', 5, size='tiny')
    task = DistillationTask(student, teacher, 5, DistillConfig(ramp_down=0.5, ramp_down_to=0.25),
                            MEAN, STD).eval()
    batch = _batch()
    with torch.no_grad():
        task.set_progress(0, 100)
        full = task(batch)
        task.set_progress(99, 100)
        faded = task(batch)
    assert (float(full['distill_scale']), float(faded['distill_scale'])) == (1.0, 0.25)
    torch.testing.assert_close(faded['ce'], full['ce'])
    terms = [k for k in full if k not in ('loss', 'ce', 'output', 'distill_scale')
             and not k.startswith('_')]
    assert len(terms) == 7 and 'adversarial' in terms
    for k in terms:
        torch.testing.assert_close(faded[k], 0.25 * full[k])
    for bad in ({'ramp_down': 1.5}, {'ramp_down_to': -0.1}):
        with pytest.raises(ValueError, match='distill.ramp_down'):
            DistillationTask(student, teacher, 5, DistillConfig(**bad), MEAN, STD)


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


def test_stkd_distill_runs_the_full_method(tmp_path):
    subprocess.run(_cmd('train-teacher', tmp_path / 't', 2, ['train.eval_every=2']),
                   check=True, capture_output=True)
    # Warm-up longer than the run: the discriminator's rate must follow the student's factor.
    # Ramp-down over the whole run: the second (last) step's terms carry half their weight.
    args = _cmd('distill', tmp_path / 'd', 2, ['train.eval_every=2', 'distill.flow=dis',
                                               'train.warmup_steps=4', 'distill.ramp_down=1',
                                               'distill.ramp_down_to=0.5'])
    args += ['--teacher', str(tmp_path / 't' / 'model.safetensors')]
    res = subprocess.run(args, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-2000:]
    with open(tmp_path / 'd' / 'metrics.csv', newline='') as f:
        rows = list(csv.DictReader(f))
    tags = {r['tag'] for r in rows}
    # Logged at step 2, for the second update: 0.0004 x warm-up factor (1 + 1) / 4.
    (d_lr,) = [float(r['value']) for r in rows if r['tag'] == 'train/d_lr']
    assert d_lr == pytest.approx(0.0002)
    assert [float(r['value']) for r in rows if r['tag'] == 'train/distill_scale'] == [0.5]
    for term in ('ce', 'kd_pixel', 'kd_pairwise', 'temporal', 'temporal_kd', 'adversarial',
                 'd_loss'):
        assert f'train/{term}' in tags, term
    assert list((tmp_path / 'd' / 'flow_cache').rglob('*.npy'))
    bad = _cmd('distill', tmp_path / 'e', 1) + ['--teacher', str(tmp_path / 'nothing')]
    res = subprocess.run(bad, capture_output=True, text=True)
    assert res.returncode == 2 and 'model file not found' in res.stderr
