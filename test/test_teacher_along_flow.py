"""The teacher's two views of a pair of frames, brought together along the flow."""

import pytest
from stkd_ros.training.teacher_along_flow import fused_classes, teacher_gate
import torch


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
