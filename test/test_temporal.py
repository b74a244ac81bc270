"""The temporal-metric core, and the three places that measure with it agreeing exactly."""

import numpy as np
import pytest
from stkd_ros.bag.messages import decode
from stkd_ros.bag.reader import iter_messages, open_bag
from stkd_ros.commands.bag_evaluation import evaluate_bag
from stkd_ros.commands.synth import IMAGE_TOPIC, synth
from stkd_ros.data.clip import Clip
from stkd_ros.data.synthetic import SyntheticConfig, SyntheticWorld
from stkd_ros.flicker import FlickerMeter
from stkd_ros.flow.pairs import PairFlow, StreamFlow
from stkd_ros.flow.warp import in_bounds, warp_labels
from stkd_ros.inference import Segmenter
from stkd_ros.model_file import save_model_file
from stkd_ros.models import build_model
from stkd_ros.report.drive_report import summarize
from stkd_ros.temporal import (compare_masks, flicker, mean_iou, pair_figures, StabilityMeter,
                               warp_mask)
from stkd_ros.training.evaluate import evaluate
import torch


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
    visible = np.array([[True, True, False, True]])
    counts = compare_masks(mask_t, mask_next, still, visible, num_classes=2)
    np.testing.assert_array_equal(counts.in_bounds, [[2, 0], [1, 0]])   # 255 not counted
    np.testing.assert_array_equal(counts.counted, [[2, 0], [0, 0]])     # occluded not counted
    assert flicker(counts.in_bounds) == pytest.approx(1 / 3)
    assert mean_iou(counts.in_bounds) == pytest.approx((2 / 3 + 0) / 2)
    assert flicker(counts.counted) == 0.0 and mean_iou(counts.counted) == 1.0
    np.testing.assert_array_equal(counts.scored, [[True, True, False, False]])
    np.testing.assert_array_equal(counts.changed, [[False, False, False, False]])
    everywhere = compare_masks(mask_t, mask_next, still, None, num_classes=2)
    np.testing.assert_array_equal(everywhere.scored, [[True, True, True, False]])
    np.testing.assert_array_equal(everywhere.changed, [[False, False, True, False]])
    with pytest.raises(ValueError, match='do not match'):
        compare_masks(mask_t, mask_next, np.zeros((1, 3, 2), np.float32), None, 2)


def test_stable_predictions_under_motion_have_tc_one_and_no_flicker():
    # Frame t+1 is frame t shifted right by one pixel; the flow t -> t+1 says so.
    pred_t = np.array([[0, 0, 1, 1, 2, 2]])
    pred_next = np.array([[9, 0, 0, 1, 1, 2]])   # new content enters on the left
    flow = np.zeros((1, 6, 2), np.float32)
    flow[..., 0] = 1.0
    meter = StabilityMeter(10)
    meter.add(pred_t, pred_next, flow, None)
    assert meter.tc() == 1.0 and meter.flicker() == 0.0
    assert meter.summary()['pixels'] == 5   # the last column's target leaves the image


def test_the_meter_accumulates_one_matrix_over_pairs_not_a_mean_of_pairs():
    still = np.zeros((1, 4, 2), np.float32)
    meter = StabilityMeter(2)
    a = pair_figures(meter.add(np.array([[0, 0, 0, 0]]), np.array([[0, 1, 0, 1]]), still, None))
    b = pair_figures(meter.add(np.array([[1, 1]]), np.array([[1, 1]]), still[:, :2], None))
    assert (a['flicker'], b['flicker']) == (0.5, 0.0)
    assert meter.flicker() == pytest.approx(2 / 6)      # not the mean of 0.5 and 0
    # class 0: 2 agree of 4; class 1: 2 agree, union 2 + 2 changed into it: (0.5 + 0.5) / 2
    assert meter.tc() == pytest.approx(0.5)
    s = meter.summary(['a', 'b'])
    assert s['pairs'] == 2 and s['per_class_flicker'] == pytest.approx({'a': 0.5, 'b': 0.0})


def test_flicker_and_tc_count_the_visible_pixels_and_tc_etc_every_in_bounds_one():
    still = np.zeros((1, 4, 2), np.float32)
    meter = StabilityMeter(2)
    meter.add(np.array([[0, 0, 0, 0]]), np.array([[0, 1, 0, 1]]), still,
              np.array([[True, True, True, False]]))
    s = meter.summary(['a', 'b'])
    assert s['flicker'] == pytest.approx(1 / 3)
    # Visible: class 0 tp 2 of union 3 -> 2/3, class 1 tp 0 -> 0; all in bounds: 0.5 and 0.
    assert s['tc'] == pytest.approx(1 / 3) and s['tc_etc'] == pytest.approx(0.25)
    assert s['per_class_tc'] == pytest.approx({'a': 2 / 3, 'b': 0.0})


@pytest.fixture(scope='module')
def drive(tmp_path_factory):
    """Record a synthetic drive to a bag; give the bag, its frames and a small model file."""
    out = tmp_path_factory.mktemp('drive')
    synth(out, clips=1, frames=5, size=(96, 192), seed=8, bag=True)
    with open_bag(out / 'bag') as reader:
        frames = [decode(t, m) for _, t, _, m in iter_messages(reader, [IMAGE_TOPIC])]
    torch.manual_seed(0)
    path = out / 'm.safetensors'
    save_model_file(path, build_model('bisenet_lite', 11).eval(), {
        'arch': 'bisenet_lite', 'arch_args': {}, 'num_classes': 11,
        'classes': [str(i) for i in range(11)], 'palette': [[0, 0, 0]] * 11,
        # A narrow std: an untrained model then tells the street's parts apart.
        'input_size': [96, 192], 'mean': [0.5] * 3, 'std': [0.05] * 3})
    return out / 'bag', frames, path


def test_evaluation_eval_bag_and_flicker_monitor_give_identical_numbers(drive):
    """The same masks, flow and occlusion mask through all three: the same figures."""
    bag, frames, model = drive
    segmenter = Segmenter(model)
    pairs = [Clip(np.stack(frames[i:i + 2]), np.full((2, 96, 192), 255, np.uint8), None)
             for i in range(len(frames) - 1)]
    offline = evaluate(segmenter, pairs, flow=PairFlow.for_streams())

    recorded = summarize(evaluate_bag(bag, [model], IMAGE_TOPIC))
    (bagged,) = recorded['models'].values()

    meter = FlickerMeter(stream=StreamFlow(PairFlow.for_streams()))
    steps = [meter.update(i, f, segmenter.segment(f)) for i, f in enumerate(frames)]
    live = meter.summary()

    # Occluded pixels were there to be left out: ETC's figure counts them, ours does not.
    assert meter.total.in_bounds.sum() > meter.total.counted.sum() > 0
    assert 0 < live['flicker'] < 0.5 and 0 < live['tc'] < 1
    for key in ('flicker', 'tc', 'tc_etc', 'pixels', 'pairs'):
        assert offline[key] == bagged[key] == meter.total.summary()[key], key
    assert offline['flicker'] == live['flicker'] and offline['tc'] == live['tc']
    assert steps[0] is None and len(steps) == len(frames)
    assert offline['stability_flow'] == recorded['stability_flow'] == live['flow']
    assert 'forward-backward' in live['flow']


def test_exact_flow_goes_with_the_photometric_check():
    clip = SyntheticWorld(SyntheticConfig(height=96, width=192, frames=4, seed=3)).clip(
        0, start=0, length=2)
    exact = PairFlow('ground_truth', max_side=32)
    flow, visible = exact.between(clip, 0, 1)
    np.testing.assert_array_equal(flow, clip.flows[0])       # exact flow is never shrunk
    assert visible.dtype == bool and 0.5 < visible.mean() < 1.0
    assert 'photometric' in exact.description
    dis = PairFlow.for_streams(64)
    flow, visible = dis.between(clip, 0, 1)
    assert flow.shape == (32, 64, 2) and visible.shape == (32, 64)
    assert 'preset=fast' in dis.description and '<= 64 px' in dis.description
