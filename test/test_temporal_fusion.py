"""The temporal fusion stage (ROS-free, frames with known motion); `stkd evaluate` with it."""

import json

from cli_helpers import CONFIG, TINY
import cv2
from model_helpers import tiny_model_file, varied_model_file
import numpy as np
import pytest
from stkd_ros.cli import main
from stkd_ros.data.synthetic import SyntheticClips, SyntheticConfig
from stkd_ros.errors import InputError
from stkd_ros.flow.pairs import PairFlow
from stkd_ros.inference import Segmenter
from stkd_ros.temporal_fusion import FusionSettings, TemporalFusion
from stkd_ros.training.evaluate import evaluate, StreetMasks

H, W, SIDE = 96, 128, 32
STEP = (3, 2)      # the square's motion per frame, (x, y) pixels


def _texture(seed, shape=(H, W)):
    """Smooth random RGB texture: DIS finds flow on it, as on a street."""
    noise = np.random.default_rng(seed).integers(0, 256, shape + (3,), dtype=np.uint8)
    return cv2.GaussianBlur(noise, (5, 5), 1.5)


def _scene(t, shape=(H, W)):
    """Frame t and its square's mask: a textured square moving STEP a frame over a still wall."""
    frame = _texture(0, shape)
    x, y = 20 + STEP[0] * t, 24 + STEP[1] * t
    frame[y:y + SIDE, x:x + SIDE] = _texture(1, (SIDE, SIDE))
    mask = np.zeros(shape, np.uint8)
    mask[y:y + SIDE, x:x + SIDE] = 1
    return frame, mask


def _edge(mask, width=2):
    """Bool: pixels within ``width`` of the mask's boundary."""
    kernel = np.ones((2 * width + 1, 2 * width + 1), np.uint8)
    return cv2.dilate(mask, kernel) != cv2.erode(mask, kernel)


def _probs(mask, sure=0.8, square=None):
    """Two-class probabilities: ``sure`` on the true class, ``square`` on the square if given."""
    p1 = np.where(mask == 1, sure if square is None else square, 1.0 - sure)
    return np.stack([1.0 - p1, p1]).astype(np.float32)


def test_a_still_scene_gives_the_models_mask():
    frame = _texture(3)
    rng = np.random.default_rng(4)
    logits = cv2.GaussianBlur(rng.standard_normal((H, W, 4)).astype(np.float32), (9, 9), 3)
    probs = np.exp(4 * logits) / np.exp(4 * logits).sum(2, keepdims=True)
    probs = np.ascontiguousarray(probs.transpose(2, 0, 1))
    model_mask = probs.argmax(0)
    assert len(np.unique(model_mask)) == 4
    fusion = TemporalFusion()
    for t in range(6):
        fused = fusion.update(frame, probs, stamp=t / 30)
        assert fusion.last_reset == ('first frame' if t == 0 else None)
        np.testing.assert_array_equal(fusion.mask(fused, frame.shape), model_mask)


def test_a_moving_objects_mask_follows_it_along_the_flow():
    """Frame 4's model doubts the square; the past, carried along the flow, keeps it whole."""
    fusion = TemporalFusion()
    for t in range(6):
        frame, truth = _scene(t)
        doubt = t == 4
        fused = fusion.update(frame, _probs(truth, square=0.4 if doubt else None), t / 30)
        assert fusion.last_reset == ('first frame' if t == 0 else None)
        mask = fusion.mask(fused, frame.shape)
        # Where the square is now, and not where it was (no smear behind it): flow at a
        # motion boundary is never exact, so a pixel or two along the square's edge may miss.
        wrong = mask != truth
        assert not (wrong & ~_edge(truth)).any() and wrong.mean() < 0.01, (t, wrong.sum())
        if doubt:
            per_frame = _probs(truth, square=0.4).argmax(0)
            assert (per_frame == 0).all()        # on its own, frame 4 loses the square


def test_the_past_follows_the_flow_not_the_pixel_grid():
    """The same doubt with a still past (no flow) loses the part of the square that moved in."""
    fusion = TemporalFusion()
    for t in (0, 1, 2, 3):
        fusion.update(*_at(t))
    frame, truth = _scene(4)
    still = fusion.update(_scene(3)[0], _probs(truth, square=0.4), 4 / 30)
    assert fusion.last_reset is None
    newly_covered = (truth == 1) & (_scene(3)[1] == 0)
    assert (fusion.mask(still, frame.shape)[newly_covered] == 0).all()


def _at(t):
    frame, truth = _scene(t)
    return frame, _probs(truth), t / 30


def test_a_missing_frame_within_the_gap_is_bridged_along_the_larger_motion():
    """Frame 4 never comes (dropped, or failed to decode): frame 5 fuses with frame 3."""
    # DIS on the output grid itself: at the default half grid, the doubled motion of an
    # object the model doubts everywhere loses a quarter of it (258 of its 1024 pixels).
    fusion = TemporalFusion(FusionSettings(flow_finest_scale=0))
    for t in (0, 1, 2, 3):
        fusion.update(*_at(t))
    frame, truth = _scene(5)
    fused = fusion.update(frame, _probs(truth, square=0.4), 5 / 30)
    assert fusion.last_reset is None
    # The model doubts the square (alone it loses it); carried two steps along the flow,
    # the past keeps it where it is now.
    assert (_probs(truth, square=0.4).argmax(0) == 0).all()
    wrong = fusion.mask(fused, frame.shape) != truth
    assert not (wrong & ~_edge(truth)).any() and wrong.mean() < 0.01, wrong.sum()


@pytest.mark.parametrize('change', ['cut', 'size', 'gap', 'back_in_time'])
def test_the_state_starts_over(change):
    fusion = TemporalFusion()
    for t in range(3):
        fusion.update(*_at(t))
        assert fusion.last_reset == ('first frame' if t == 0 else None)
    frame, probs, stamp = _at(3)
    if change == 'cut':
        frame = _texture(9) // 4 + 170      # another place, in other light
    elif change == 'size':
        frame, truth = _scene(3, (H + 16, W))
        probs = _probs(truth)
    elif change == 'gap':
        stamp = 3.0
    else:
        stamp = 0.01
    # A fresh prediction unlike the past, so that any fusion would show.
    probs = probs[::-1].copy()
    fused = fusion.update(frame, probs, stamp)
    expected = {'cut': 'scene cut', 'size': 'size changed', 'gap': 'gap of',
                'back_in_time': 'gap of'}[change]
    assert fusion.last_reset.startswith(expected)
    np.testing.assert_array_equal(fused, probs.transpose(1, 2, 0))
    # And the next frame fuses with the new start.
    fusion.update(frame, probs, stamp + 1 / 30)
    assert fusion.last_reset is None


def test_frames_at_another_size_than_the_output_fuse_at_the_output_size():
    fusion = TemporalFusion()
    for t in range(3):
        frame, truth = _scene(t)
        big = cv2.resize(frame, (2 * W, 2 * H), interpolation=cv2.INTER_NEAREST)
        fused = fusion.update(big, _probs(truth), t / 30)
        # Channels-last at the output size, the layout the state is carried in.
        assert fused.shape == (H, W, 2) and fused.flags.c_contiguous
        assert fused.dtype == np.float32
        mask = fusion.mask(fused, big.shape)
        assert mask.shape == (2 * H, 2 * W)
        wrong = mask != cv2.resize(truth, (2 * W, 2 * H), interpolation=cv2.INTER_NEAREST)
        assert wrong.mean() < 0.01 and not (wrong[::2, ::2] & ~_edge(truth)).any()


@pytest.mark.parametrize('confidence_weight', [0.0, 1.0])
def test_a_certain_fresh_prediction_overrides_the_past_only_by_its_confidence_weight(
        confidence_weight):
    fusion = TemporalFusion(FusionSettings(confidence_weight=confidence_weight))
    frame, truth = _scene(0)
    fusion.update(frame, _probs(truth, sure=0.6), 0.0)
    certain = _probs(truth, sure=1.0)
    fused = fusion.update(frame, certain, 1 / 30)
    assert fusion.last_reset is None
    # Lifted all the way by its certainty, the fresh prediction stands alone.
    assert np.array_equal(fused, certain.transpose(1, 2, 0)) == (confidence_weight == 1.0)


def test_bad_settings_and_inputs_are_one_line_errors():
    with pytest.raises(InputError, match='fresh_weight'):
        FusionSettings(fresh_weight=1.5)
    with pytest.raises(InputError, match='max_gap_s'):
        FusionSettings(max_gap_s=0)
    with pytest.raises(InputError, match='HxWx3'):
        TemporalFusion().update(np.zeros((H, W), np.uint8), np.zeros((2, H, W), np.float32))


def test_settings_parse_from_key_value_strings():
    settings = FusionSettings.parse(['fresh_weight=0.5', ' cut_share = 0.25 ',
                                     'flow_preset=medium', 'flow_finest_scale=1'])
    assert settings == FusionSettings(fresh_weight=0.5, cut_share=0.25, flow_preset='medium',
                                      flow_finest_scale=1)
    assert FusionSettings.parse([]) == FusionSettings()


@pytest.mark.parametrize('items, error', [
    (['fresh_wieght=0.5'], r"^--fusion fresh_wieght=0.5: unknown setting 'fresh_wieght'; the "
                           r'settings are fresh_weight, confidence_weight, '),
    (['fresh_weight'], '^--fusion fresh_weight: expected KEY=VALUE; '),
    (['max_gap_s=soon'], "^--fusion max_gap_s=soon: max_gap_s takes a number, got 'soon'$"),
    (['flow_finest_scale=0.5'], '^--fusion flow_finest_scale=0.5: flow_finest_scale takes a '
                                'whole number'),
    (['cut_share=0.2', 'cut_share=0.3'], '^--fusion cut_share=0.3: cut_share is given twice$'),
    (['fresh_weight=1.5'], r'^temporal fusion: fresh_weight must lie in \[0, 1\], got 1.5$'),
    (['flow_finest_scale=-1'], '^temporal fusion: flow_finest_scale must be 0 or more'),
])
def test_bad_settings_strings_are_one_line_errors_naming_the_item(items, error):
    with pytest.raises(InputError, match=error):
        FusionSettings.parse(items)


def _held_out(frames=6):
    return SyntheticClips(SyntheticConfig(height=64, width=128, frames=frames), split='val',
                          clips=2, gap=1, clip_length=2, keys_per_clip=2)


def test_evaluate_scores_each_street_as_one_fused_stream_from_its_first_frame(tmp_path):
    seg = Segmenter(varied_model_file(tmp_path / 'm.safetensors'))
    clips, settings = _held_out(), FusionSettings()
    streets = StreetMasks(seg, clips, settings)
    for i in range(len(clips)):
        clip = clips[i]
        # The node's stream: every frame of the street from frame 0, one state.
        fusion = TemporalFusion(settings)
        node = [seg.segment(clips.sequence_frame(clip.sequence, t)[0], fusion=fusion)
                for t in range(clip.times[1] + 1)]
        scored = streets(clip)
        for t, mask in zip(clip.times, scored):
            np.testing.assert_array_equal(mask, node[t])
        if clip.times[0] == 0:
            np.testing.assert_array_equal(scored[0], seg.segment(clip.frames[0]))
    assert streets.segmented == 2 * 6           # each frame of each street once
    flow = PairFlow('ground_truth')
    off = evaluate(seg, clips, flow=flow)
    on = evaluate(seg, clips, flow=flow, fusion=settings)
    assert off['temporal_fusion'] == 'off' and on['temporal_fusion'] == settings.describe()
    assert on['clips'] == off['clips'] == 4 and on['flicker'] != off['flicker']


@pytest.mark.parametrize('switches, settings', [
    (['--temporal-fusion'], FusionSettings()),
    # --fusion implies --temporal-fusion; the settings not given keep their defaults.
    (['--fusion', 'fresh_weight=0.5', '--fusion', 'max_gap_s=0.2'],
     FusionSettings(fresh_weight=0.5, max_gap_s=0.2)),
])
def test_evaluate_names_the_fusion_and_refuses_clips_that_are_not_streams(tmp_path, capsys,
                                                                          switches, settings):
    model = tiny_model_file(tmp_path / 'm.safetensors', 0)
    out = tmp_path / 'r.json'
    args = ['evaluate', '--model', str(model), '--config', CONFIG, '--json', str(out),
            *switches] + [a for item in TINY for a in ('--set', item)]
    assert main(args) == 0
    result = json.loads(out.read_text())
    assert result['temporal_fusion'] == settings.describe()
    assert f'temporal fusion: {settings.describe()}' in capsys.readouterr().out
    clip = _held_out()[0]
    with pytest.raises(InputError, match='--temporal-fusion: list clips are not frames'):
        evaluate(Segmenter(model), [clip], flow=PairFlow('ground_truth'),
                 fusion=FusionSettings())


def test_a_bad_fusion_setting_on_the_command_line_is_one_line(tmp_path, capsys):
    model = tiny_model_file(tmp_path / 'm.safetensors', 0)
    for command in (['evaluate', '--model', str(model), '--config', CONFIG],
                    ['eval-bag', '--bag', str(tmp_path / 'no_bag'), '--model', str(model),
                     '--topic', '/cam/image']):
        assert main(command + ['--fusion', 'fresh_weight=lots']) == 2
        err = capsys.readouterr().err.strip()
        assert err == (f'stkd {command[0]}: error: --fusion fresh_weight=lots: fresh_weight '
                       f"takes a number, got 'lots'"), err
