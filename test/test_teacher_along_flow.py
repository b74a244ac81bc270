"""The teacher's two views of a pair of frames, brought together along the flow."""

import pytest
from stkd_ros.config import DistillConfig, DistillWeights, load_config
from stkd_ros.errors import InputError
from stkd_ros.losses.temporal import motion_consistency
from stkd_ros.models import build_model
from stkd_ros.training.data_needs import data_needs
from stkd_ros.training.distill_task import DistillationTask
from stkd_ros.training.tasks import cross_entropy
from stkd_ros.training.teacher_along_flow import fused_classes, teacher_gate
import torch

HARD = {'pixel': 0, 'pairwise': 0, 'temporal': 0, 'temporal_kd': 0, 'adversarial': 0,
        'pseudo_label': 1}


def _logits(classes, classes_count=3, sure=4.0):
    """Logits (1, C, H, W) that name ``classes`` (H, W) with margin ``sure``."""
    return torch.nn.functional.one_hot(classes, classes_count).permute(2, 0, 1)[None] * sure


def _scene():
    """Frame t's classes, and frame t+k: the same scene moved 2 pixels to the right."""
    classes = torch.zeros(6, 10, dtype=torch.long)
    classes[:, 3:5] = 1
    classes[2:4, 6] = 2
    moved = torch.roll(classes, 2, dims=1)
    flow = torch.zeros(1, 2, 6, 10)
    flow[:, 0] = 2.0                       # t's pixel x is t+k's pixel x + 2
    return classes, moved, flow


def test_a_hesitant_view_of_t_is_corrected_by_a_sure_view_of_t_plus_k():
    classes, moved, flow = _scene()
    wrong = classes.clone()
    wrong[2, 3] = 2                         # t's view names the wrong class, barely
    logits_t = _logits(wrong, sure=0.5)
    visible = torch.ones(1, 6, 10, dtype=torch.bool)
    visible[:, :, 8:] = False               # t+k does not see what leaves on the right
    fused = fused_classes(logits_t, _logits(moved), flow, visible)[0]
    assert fused[2, 3] == 1
    assert torch.equal(fused[:, :8], classes[:, :8])
    # Where t+k does not see the pixel, t's own view decides, right or wrong.
    hidden = visible.clone()
    hidden[0, 2, 3] = False
    assert fused_classes(logits_t, _logits(moved), flow, hidden)[0, 2, 3] == 2


def test_views_that_agree_give_the_teachers_classes():
    classes, _, _ = _scene()
    logits = _logits(classes)
    still = torch.zeros(1, 2, 6, 10)
    fused = fused_classes(logits, logits, still, torch.ones(1, 6, 10, dtype=torch.bool))
    assert torch.equal(fused[0], classes)


def test_the_agreement_gate_keeps_the_pixels_whose_classes_follow_the_flow():
    classes, moved, flow = _scene()
    changed = moved.clone()
    changed[0, 5] = 2                        # t+k's view of t's pixel (0, 3) changes class
    gate = teacher_gate('agreement', _logits(classes), _logits(changed), flow, 0.9)[0]
    assert not gate[0, 3]
    assert not gate[:, 8:].any()             # carried from outside t+k: no agreement to see
    assert gate[:, :8].sum() == 6 * 8 - 1


def test_the_confidence_gate_keeps_the_pixels_the_teacher_is_sure_of():
    classes, moved, flow = _scene()
    logits = _logits(classes, sure=4.0)
    logits[0, :, 1, 1] = 0.0                 # no preference: 1/3 each
    gate = teacher_gate('confidence', logits, _logits(moved), flow, 0.9)[0]
    assert not gate[1, 1] and gate.sum() == 6 * 10 - 1
    with pytest.raises(ValueError, match='no gate'):
        teacher_gate('both', logits, logits, flow, 0.9)


class PixelTeacher(torch.nn.Module):
    """A teacher that classifies each pixel by its colour: its classes vary across a frame."""

    def __init__(self):
        super().__init__()
        self.classify = torch.nn.Conv2d(3, 5, 1)

    def forward(self, x):
        return {'logits': 3 * self.classify(x)}


def _task(weights, **settings):
    torch.manual_seed(0)
    cfg = DistillConfig(weights=DistillWeights(**{**HARD, **weights}), **settings)
    return DistillationTask(build_model('bisenet_lite', 5), PixelTeacher(), 5, cfg)


def _batch(n=2, h=32, w=64):
    torch.manual_seed(1)
    labels = torch.full((n, 2, h, w), 255)
    labels[0, 0] = torch.randint(0, 5, (h, w))          # sample 0's frame t labeled, no other
    flows = torch.zeros(n, 1, 2, h, w)
    flows[:, 0, 0] = 1.5                               # t's pixels lie 1.5 to the right in t+k
    visible = torch.ones(n, h, w, dtype=torch.bool)
    visible[:, :, -2:] = False
    return {'frames': torch.randn(n, 2, 3, h, w), 'labels': labels, 'flows': flows,
            'visible': visible}


def test_fused_views_teach_the_unlabeled_frame_t_and_t_plus_k_keeps_its_own():
    task = _task({}, fuse_views=True)
    batch = _batch()
    with torch.no_grad():
        out = task(batch)
        frames = torch.cat(batch['frames'].unbind(1))
        s, t = task.model(frames)['logits'], task.teacher(frames)['logits']
    fused = fused_classes(t[:2], t[2:], batch['flows'][:, 0], batch['visible'])
    assert not torch.equal(fused, t[:2].argmax(1))     # the fusion changed some classes
    targets = torch.cat([torch.full_like(fused[:1], 255), fused[1:], t[2:].argmax(1)])
    torch.testing.assert_close(out['pseudo_label'], cross_entropy(s, targets))


@pytest.mark.parametrize('gate', ['confidence', 'agreement'])
def test_without_a_store_a_gate_reads_the_teachers_own_view(gate):
    task = _task({'temporal': 3.0}, temporal_gate=gate, gate_confidence=0.3)
    batch = _batch()
    with torch.no_grad():
        out = task(batch)
        frames = torch.cat(batch['frames'].unbind(1))
        s, t = task.model(frames)['logits'], task.teacher(frames)['logits']
    flow = batch['flows'][:, 0]
    kept = batch['visible'] & teacher_gate(gate, t[:2], t[2:], flow, 0.3)
    assert 0 < kept.float().mean() < batch['visible'].float().mean()
    torch.testing.assert_close(out['temporal'], motion_consistency(s[:2], s[2:], flow, kept))


def test_fused_views_bring_two_frames_and_their_flow_and_need_online_labels(tmp_path):
    sets = [f'distill.weights.{k}={v}' for k, v in HARD.items()]
    world = sets + ['data.synthetic.unlabeled_clips=2', 'distill.fuse_views=true']
    needs = data_needs(load_config(None, world), distill=True)
    assert needs.frames == 2 and needs.flow is not None and needs.unlabeled
    for more in (['distill.weights.pseudo_label=0', 'distill.weights.pixel=1'],
                 [f'data.labels={tmp_path / "store"}']):
        with pytest.raises(InputError, match='^distill.fuse_views: fuses the online labels'):
            data_needs(load_config(None, world + more), distill=True)
