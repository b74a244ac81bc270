"""The temporal-metric core, and the three places that measure with it agreeing exactly."""

import numpy as np
import pytest
from stkd_ros.bag.evaluate import ModelTrack
from stkd_ros.data.synthetic import SyntheticConfig, SyntheticWorld
from stkd_ros.flicker import FlickerMeter
from stkd_ros.flow.stream import StreamFlow
from stkd_ros.flow.warp import in_bounds, warp_labels
from stkd_ros.inference import Segmenter
from stkd_ros.metrics import TemporalConsistency
from stkd_ros.model_file import save_model_file
from stkd_ros.models import build_model
from stkd_ros.temporal import compare_masks, flicker, mean_iou, warp_mask
import torch


@pytest.fixture(scope='module')
def pair():
    """Two frames of a synthetic drive, their class masks (no 255) and the true flow."""
    clip = SyntheticWorld(SyntheticConfig(height=96, width=192, frames=4, seed=3)).clip(
        0, start=0, length=2)
    masks = np.where(clip.labels == 255, 0, clip.labels).astype(np.uint8)
    return clip.frames, masks, clip.flows[0]


def test_warp_mask_is_the_training_warp():
    rng = np.random.default_rng(0)
    mask = rng.integers(0, 11, (1, 20, 30))
    flow = rng.uniform(-4, 4, (1, 2, 20, 30)).astype(np.float32)
    warped, inside = warp_mask(mask[0], flow[0].transpose(1, 2, 0))
    flow_t = torch.from_numpy(flow)
    np.testing.assert_array_equal(inside, in_bounds(flow_t)[0].numpy())
    expected = warp_labels(torch.from_numpy(mask), flow_t)[0].numpy()
    np.testing.assert_array_equal(warped[inside], expected[inside])


def test_compare_masks_known_case_with_occlusion_and_ignore():
    mask_t = np.array([[0, 0, 1, 255]])
    mask_next = np.array([[0, 0, 0, 1]])
    still = np.zeros((1, 4, 2), np.float32)
    valid = np.array([[True, True, False, True]])
    counts = compare_masks(mask_t, mask_next, still, valid, num_classes=2)
    np.testing.assert_array_equal(counts.in_bounds, [[2, 0], [1, 0]])   # 255 not counted
    np.testing.assert_array_equal(counts.visible, [[2, 0], [0, 0]])
    assert flicker(counts.in_bounds) == pytest.approx(1 / 3)
    assert mean_iou(counts.in_bounds) == pytest.approx((2 / 3 + 0) / 2)
    assert flicker(counts.visible) == 0.0 and mean_iou(counts.visible) == 1.0
    with pytest.raises(ValueError, match='do not match'):
        compare_masks(mask_t, mask_next, np.zeros((1, 3, 2), np.float32))


def test_evaluation_eval_bag_and_flicker_monitor_give_identical_numbers(pair, tmp_path):
    frames, masks, _ = pair
    stream = StreamFlow()
    stream.update(frames[0])
    flow = stream.update(frames[1])   # what both eval-bag and the monitor compute

    offline = TemporalConsistency(11).update(
        torch.from_numpy(masks[:1]).long(), torch.from_numpy(masks[1:]).long(),
        torch.from_numpy(flow).permute(2, 0, 1)[None])

    torch.manual_seed(0)
    path = tmp_path / 'm.safetensors'
    save_model_file(path, build_model('bisenet_lite', 11).eval(), {
        'arch': 'bisenet_lite', 'arch_args': {}, 'num_classes': 11,
        'classes': [str(i) for i in range(11)], 'palette': [[0, 0, 0]] * 11,
        'input_size': [96, 192], 'mean': [0.5] * 3, 'std': [0.25] * 3})
    track = ModelTrack('m', Segmenter(path))
    track.add_mask(0, masks[0], masks[0], None, {})
    track.add_mask(1, masks[1], masks[1], flow, {})

    meter = FlickerMeter()
    assert meter.update(0, frames[0], masks[0]) is None
    live = meter.update(1, frames[1], masks[1])

    summary = offline.summary()
    assert 0 < live['flicker'] < 0.5 and 0.2 < live['tc'] < 1
    assert summary['flicker'] == track.flicker[0] == live['flicker']
    assert summary['tc'] == track.tc[0] == live['tc']
    assert offline.counted == live['pixels'] == track.class_counted.sum()


def test_occlusion_masked_tc_counts_only_visible_pixels(pair):
    _, masks, flow = pair
    valid = np.zeros(masks.shape[1:], bool)
    valid[:, :100] = True
    tc = TemporalConsistency(11).update(
        torch.from_numpy(masks[:1]).long(), torch.from_numpy(masks[1:]).long(),
        torch.from_numpy(flow).permute(2, 0, 1)[None], torch.from_numpy(valid)[None])
    counts = compare_masks(masks[0], masks[1], flow, valid, num_classes=11)
    summary = tc.summary()
    assert summary['tc_occlusion_masked'] == mean_iou(counts.visible)
    assert summary['tc'] == mean_iou(counts.in_bounds) != summary['tc_occlusion_masked']
    assert tc.flicker() == flicker(counts.visible)
