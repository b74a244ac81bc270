"""Flow estimators and warping: identities, exact shifts, and DIS against ground truth."""

import numpy as np
import pytest
from stkd_ros.flow import build_flow
from stkd_ros.flow.occlusion import forward_backward_valid, photometric_valid
from stkd_ros.flow.warp import in_bounds, warp, warp_labels
import torch


def _shift_flow(n, h, w, dx, dy):
    flow = torch.zeros(n, 2, h, w)
    flow[:, 0], flow[:, 1] = dx, dy
    return flow


def test_zero_flow_is_the_identity():
    x = torch.rand(2, 5, 7, 9)
    torch.testing.assert_close(warp(x, torch.zeros(2, 2, 7, 9)), x)
    labels = torch.randint(0, 11, (2, 7, 9))
    torch.testing.assert_close(warp_labels(labels, torch.zeros(2, 2, 7, 9)), labels)


def test_integer_shift_warps_exactly_and_marks_the_border_invalid():
    x = torch.arange(6 * 8, dtype=torch.float32).reshape(1, 1, 6, 8)
    out = warp(x, _shift_flow(1, 6, 8, 2, 1))
    torch.testing.assert_close(out[0, 0, :5, :6], x[0, 0, 1:, 2:])
    labels = torch.arange(48).reshape(1, 6, 8) % 11
    warped = warp_labels(labels, _shift_flow(1, 6, 8, 2, 1))
    torch.testing.assert_close(warped[0, :5, :6], labels[0, 1:, 2:])
    assert (warped[0, :, 6:] == 255).all() and (warped[0, 5] == 255).all()
    assert in_bounds(_shift_flow(1, 6, 8, 2, 1))[0].sum() == 5 * 6


def test_half_pixel_shift_interpolates_images_but_not_labels():
    x = torch.tensor([[[[0.0, 10.0, 20.0]]]])
    out = warp(x, _shift_flow(1, 1, 3, 0.5, 0))
    torch.testing.assert_close(out[0, 0, 0, :2], torch.tensor([5.0, 15.0]))
    lab = warp_labels(torch.tensor([[[1, 2, 3]]]), _shift_flow(1, 1, 3, 0.4, 0))
    assert lab[0, 0, :2].tolist() == [1, 2]


def test_forward_backward_check_flags_disagreement():
    fw, bw = _shift_flow(1, 8, 8, 1, 0), _shift_flow(1, 8, 8, -1, 0)
    valid = forward_backward_valid(fw, bw)
    assert valid[0, :, :7].all() and not valid[0, :, 7].any()
    bad = bw.clone()
    bad[:, :, 2:4, 2:4] = 3.0
    assert not forward_backward_valid(fw, bad)[0, 2:4, 1:3].any()


def test_photometric_check():
    img = torch.rand(1, 3, 8, 8)
    assert photometric_valid(img, img, torch.zeros(1, 2, 8, 8), 0.1).all()
    assert not photometric_valid(img, 1 - img, torch.zeros(1, 2, 8, 8), 0.1).all()


def _epe(flow, gt):
    return float(np.linalg.norm(flow - gt, axis=-1).mean())


def test_dis_agrees_with_ground_truth_on_the_synthetic_world(world_256):
    """
    DIS end-point error on the synthetic world at 256x512.

    Measured here: 1.36 and 1.73 px on these two clips (3.9 and 4.3 px mean motion). The
    bound leaves room for other CPUs and OpenCV builds, and zero flow must do much worse.
    """
    dis, gt = build_flow('dis'), build_flow('ground_truth')
    epe, still = [], []
    for index in range(2):
        clip = world_256.clip(index, length=2, gap=1)
        truth = gt.between(clip, 0, 1)
        epe.append(_epe(dis.between(clip, 0, 1), truth))
        still.append(_epe(np.zeros_like(truth), truth))
    assert np.mean(epe) < 3.0, epe
    assert np.mean(epe) < 0.5 * np.mean(still), (epe, still)


def test_farneback_runs_and_beats_zero_flow(world_256):
    clip = world_256.clip(0, length=2, gap=1)
    truth = clip.flows[0]
    flow = build_flow('farneback').between(clip, 0, 1)
    assert flow.shape == truth.shape
    assert _epe(flow, truth) < _epe(np.zeros_like(truth), truth)


@pytest.mark.parametrize('method', ['dis', 'farneback'])
def test_both_ways_is_each_direction_on_its_own(world_256, method):
    # The forward-backward check's pair, with each frame made gray once, is the two flows.
    clip = world_256.clip(0, length=2, gap=1)
    flow = build_flow(method)
    forward, backward = flow.both_ways(clip.frames[0], clip.frames[1])
    np.testing.assert_array_equal(forward, flow(clip.frames[0], clip.frames[1]))
    np.testing.assert_array_equal(backward, flow(clip.frames[1], clip.frames[0]))
    with pytest.raises(Exception, match='two HxWx3 frames of one size'):
        flow.both_ways(clip.frames[0], clip.frames[1][:10])


def test_ground_truth_needs_a_synthetic_clip(small_world):
    gt = build_flow('ground_truth')
    clip = small_world.clip(0, length=2)
    np.testing.assert_array_equal(gt.between(clip, 0, 1), clip.flows[0])
    clip.flows = None
    with pytest.raises(ValueError, match='no ground-truth flow'):
        gt.between(clip, 0, 1)


def test_unknown_method_and_missing_raft_weights_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match='unknown flow method'):
        build_flow('magic')
    with pytest.raises(ValueError, match='weights as a local file'):
        build_flow('raft')
    with pytest.raises(FileNotFoundError, match='nope.pth'):
        build_flow('raft', weights=str(tmp_path / 'nope.pth'))


def test_raft_loads_local_weights_and_returns_flow(tmp_path):
    from torchvision.models.optical_flow import raft_small
    torch.manual_seed(0)
    path = tmp_path / 'raft_small.pth'
    torch.save(raft_small(weights=None).state_dict(), path)
    raft = build_flow('raft', size='small', weights=str(path), iterations=2)
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (60, 84, 3), dtype=np.uint8)
    flow = raft(img, img)
    assert flow.shape == (60, 84, 2) and flow.dtype == np.float32
    assert 'raft' in raft.key() and 'raft_small.pth' in raft.key()


def test_flow_keys_name_the_settings():
    assert build_flow('dis', preset='fast').key() == 'dis,preset=fast'
    assert build_flow('dis').key() != build_flow('dis', preset='fast').key()


def test_numpy_checks_of_one_pair_agree_with_the_torch_batch_checks(world_256):
    # The monitor and eval-bag check one pair in NumPy (no PyTorch), training checks batches
    # in torch: the same definition, the same pixels (real DIS flow, and a flow with NaN).
    from stkd_ros.flow.visible import forward_backward_visible, photometric_visible
    frames = world_256.clip(0, length=2, gap=1).frames
    dis = build_flow('dis')
    fw, bw = dis.both_ways(frames[0], frames[1])
    fw[:3, :3] = np.nan

    def batch(a):
        return torch.from_numpy(np.ascontiguousarray(a, np.float32)).permute(2, 0, 1)[None]

    ours = forward_backward_visible(fw, bw)
    theirs = forward_backward_valid(batch(fw), batch(bw))[0].numpy()
    assert 0.5 < ours.mean() < 1 and not ours[:3, :3].any()
    assert (ours != theirs).mean() < 1e-4
    ours = photometric_visible(frames[0], frames[1], fw, 0.08)
    theirs = photometric_valid(batch(frames[0]) / 255.0, batch(frames[1]) / 255.0, batch(fw),
                               0.08)[0].numpy()
    assert 0.5 < ours.mean() < 1 and (ours != theirs).mean() < 1e-4
