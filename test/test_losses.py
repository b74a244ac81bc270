"""Each distillation loss: zero in the ideal case, positive otherwise, gradients where due."""

import pytest
from stkd_ros.losses.adversarial import discriminator_loss, generator_loss
from stkd_ros.losses.pairwise import pairwise_kd, pooled_nodes
from stkd_ros.losses.pixel import pixel_kd
from stkd_ros.losses.temporal import motion_consistency, temporal_kd
from stkd_ros.models.discriminator import PairDiscriminator
import torch


def test_pixel_kd_zero_for_identical_and_positive_otherwise():
    logits = torch.randn(2, 5, 4, 6)
    assert pixel_kd(logits, logits.clone()).abs() < 1e-6
    assert pixel_kd(logits, logits + 3.0).abs() < 1e-5   # softmax is shift invariant
    assert pixel_kd(logits, torch.randn(2, 5, 4, 6)) > 0.01
    with pytest.raises(ValueError, match='differ'):
        pixel_kd(logits, torch.randn(2, 4, 4, 6))


def test_pixel_kd_gradient_reaches_student_not_teacher():
    student = torch.randn(1, 3, 2, 2, requires_grad=True)
    teacher = torch.randn(1, 3, 2, 2, requires_grad=True)
    pixel_kd(student, teacher, temperature=2.0).backward()
    assert student.grad is not None and student.grad.abs().sum() > 0
    assert teacher.grad is None


def test_pairwise_kd_compares_structure_not_channels():
    feat = torch.randn(2, 8, 8, 16)
    other_width = torch.cat([feat, feat], dim=1) * 3.0   # same directions, twice the channels
    assert pairwise_kd(feat, other_width, grid=(4, 8)) < 1e-10
    assert pairwise_kd(feat, torch.randn(2, 32, 8, 16), grid=(4, 8)) > 1e-3
    nodes, weight = pooled_nodes(feat, (4, 8))   # unit vectors: a node's self-affinity is 1
    assert nodes.shape == (2, 8, 32) and (weight == 1).all()
    torch.testing.assert_close(nodes.norm(dim=1), torch.ones(2, 32))


def test_pair_kd_grid_is_never_finer_than_the_features():
    s, t = torch.randn(2, 8, 6, 12), torch.randn(2, 16, 24, 48)
    torch.testing.assert_close(pairwise_kd(s, t, grid=(8, 16)), pairwise_kd(s, t, grid=(6, 12)))
    torch.testing.assert_close(temporal_kd(s, s.flip(0), t, t.flip(0), grid=(8, 16)),
                               temporal_kd(s, s.flip(0), t, t.flip(0), grid=(6, 12)))


def _padded_pair(k=5, h=8, w=16):
    """Student and teacher maps that agree on the image and differ on the padding (right half)."""
    torch.manual_seed(0)
    teacher = torch.randn(2, k, h, w)
    student = teacher.clone()
    student[..., w // 2:] = torch.randn(2, k, h, w // 2)
    mask = torch.ones(2, h, w, dtype=torch.bool)
    mask[..., w // 2:] = False
    return student, teacher, mask


def test_every_distillation_term_ignores_crop_padding():
    student, teacher, mask = _padded_pair()
    assert pixel_kd(student, teacher) > 0.01 and pixel_kd(student, teacher, mask=mask) < 1e-6
    assert pairwise_kd(student, teacher, (4, 8)) > 1e-3
    assert pairwise_kd(student, teacher, (4, 8), mask) < 1e-10
    nxt = teacher.roll(1, dims=2)
    assert temporal_kd(student, nxt, teacher, nxt, (4, 8)) > 1e-3
    assert temporal_kd(student, nxt, teacher, nxt, (4, 8), mask) < 1e-10


def test_motion_consistency_zero_when_prediction_moves_with_the_flow():
    logits_t = torch.randn(1, 4, 6, 8)
    shifted = torch.zeros_like(logits_t)
    shifted[..., 2:] = logits_t[..., :-2]          # content moves 2 px right from t to t+k
    flow = torch.zeros(1, 2, 6, 8)
    flow[:, 0] = 2.0
    assert motion_consistency(logits_t, shifted, flow) < 1e-10
    assert motion_consistency(logits_t, shifted, torch.zeros(1, 2, 6, 8)) > 1e-3
    none_valid = torch.zeros(1, 6, 8, dtype=torch.bool)
    assert motion_consistency(logits_t, torch.randn(1, 4, 6, 8), flow, none_valid) == 0


def test_zero_flow_makes_motion_consistency_a_plain_frame_difference():
    torch.manual_seed(0)
    a = torch.randn(1, 3, 4, 4, requires_grad=True)
    assert motion_consistency(a, a.detach().clone(), torch.zeros(1, 2, 4, 4)).item() == (
        pytest.approx(0.0, abs=1e-12))
    b = torch.randn(1, 3, 4, 4)
    loss = motion_consistency(a, b, torch.zeros(1, 2, 4, 4))
    difference = (a.softmax(1) - b.softmax(1)).pow(2).sum(1).mean()
    torch.testing.assert_close(loss, difference)   # the warp is the identity
    loss.backward()
    assert a.grad.abs().sum() > 0


def _line_logits(coverage):
    """Two-class logits (1, 2, 4, 8) of a vertical line with the given coverage per column."""
    p = torch.tensor(coverage).expand(4, 8).clamp(1e-6, 1 - 1e-6)
    return torch.stack([torch.log(1 - p), torch.log(p)])[None]


def test_per_pixel_consistency_pulls_a_thin_line_down():
    # A one-pixel line at column 5 moves half a pixel: the next frame sees it half in column 5
    # and half in column 6. Along this exact flow, bilinear warping lowers its peak.
    logits_t = _line_logits([0, 0, 0, 0, 0, 1, 0, 0]).requires_grad_(True)
    logits_next = _line_logits([0, 0, 0, 0, 0, 0.5, 0.5, 0])
    flow = torch.zeros(1, 2, 4, 8)
    flow[:, 0] = 0.5
    per_pixel = motion_consistency(logits_t, logits_next, flow)
    assert per_pixel > 0.01
    per_pixel.backward()
    assert logits_t.grad[0, 1, :, 5].max() > 0          # descent lowers the line's logit


def test_consistency_counts_only_valid_pixels():
    logits_t, logits_next = torch.randn(1, 3, 8, 8), torch.randn(1, 3, 8, 8)
    flow = torch.zeros(1, 2, 8, 8)
    valid = torch.zeros(1, 8, 8, dtype=torch.bool)
    assert motion_consistency(logits_t, logits_next, flow, valid) == 0
    valid[:, :4, :4] = True       # the mean squared distance over those 16 pixels
    p_t = torch.softmax(logits_t, 1)[..., :4, :4]
    p_n = torch.softmax(logits_next, 1)[..., :4, :4]
    expected = (p_t - p_n).pow(2).sum(dim=1).mean()
    torch.testing.assert_close(motion_consistency(logits_t, logits_next, flow, valid), expected)


def test_temporal_kd_zero_when_student_relates_frames_like_the_teacher():
    s_t, s_n = torch.randn(2, 8, 8, 16), torch.randn(2, 8, 8, 16)
    assert temporal_kd(s_t, s_n, 2 * s_t, 2 * s_n, grid=(4, 4)) < 1e-10
    assert temporal_kd(s_t, s_n, s_t, s_t, grid=(4, 4)) > 1e-3
    t_t = torch.randn(2, 8, 8, 16, requires_grad=True)
    s = s_t.clone().requires_grad_(True)
    temporal_kd(s, s_n, t_t, s_n, grid=(4, 4)).backward()
    assert s.grad is not None and t_t.grad is None


def test_gan_losses_point_the_right_way():
    real, fake = torch.tensor([2.0, 3.0]), torch.tensor([-2.0, -3.0])
    assert discriminator_loss(real, fake) == 0      # confident and right: no loss
    assert discriminator_loss(fake, real) > 0
    assert generator_loss(fake) > generator_loss(real)


def test_discriminator_scores_pairs_with_spectral_normalization():
    torch.manual_seed(0)
    d = PairDiscriminator(num_classes=3, width=8)
    pair = torch.rand(2, 2 * 3, 32, 64)
    assert d(pair).shape == (2,)
    spectral = [n for n, _ in d.named_parameters() if 'parametrizations' in n]
    assert spectral, 'discriminator layers use spectral normalization'
