"""
eval-bag with temporal fusion: the masks segment_node publishes, beside the per-frame masks.

The drive has a frame that fails to decode in its middle: eval-bag and the node alike skip it
and fuse the frames after it with the stream's past (or start over where the stamps' gap says
so).
"""

import json
from types import SimpleNamespace

from model_helpers import varied_model_file
import numpy as np
import pytest
from stkd_ros.bag.messages import decode, IMAGE, image_message, TYPESTORE
from stkd_ros.bag.reader import iter_messages, open_bag
from stkd_ros.cli import main
from stkd_ros.commands.bag_evaluation import evaluate_bag
from stkd_ros.commands.eval_bag import eval_bag
from stkd_ros.commands.synth import IMAGE_TOPIC, LABEL_TOPIC, synth
from stkd_ros.image_msgs import ImageError, mask_to_array, stamp_ns
from stkd_ros.inference import Segmenter
from stkd_ros.nodes.replay_settings import SEGMENT_NODE
from stkd_ros.report.drive_report import summarize
from stkd_ros.report.html_page import esc
from stkd_ros.temporal_fusion import FusionSettings, header_seconds, TemporalFusion

pytestmark = pytest.mark.slow
FRAMES = 8
BAD = 4             # the frame that fails to decode (its encoding is not one an image has)
FUSED_MASKS = '/stkd/varied/mask'   # the annotated bag's topic of the model's masks
# Every wait ends on an event (a mask); the timeout only bounds a failure.
EVENT_TIMEOUT = 60.0


@pytest.fixture(scope='module')
def drive(tmp_path_factory):
    """
    Give a synthetic street as a 30 Hz bag with labels, frame BAD undecodable, and a model.

    The model's masks vary over a frame, so that the fusion changes pixels.
    """
    from rosbags.rosbag2 import StoragePlugin, Writer
    out = tmp_path_factory.mktemp('drive')
    synth(out, clips=1, frames=FRAMES, size=(96, 160), bag=True, seed=3)
    frames = _read(out / 'bag', IMAGE_TOPIC, mask=False)
    labels = _read(out / 'bag', LABEL_TOPIC, mask=True)
    with Writer(out / 'broken', version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        images = writer.add_connection(IMAGE_TOPIC, IMAGE, typestore=TYPESTORE)
        truth = writer.add_connection(LABEL_TOPIC, IMAGE, typestore=TYPESTORE)
        for i, (stamp, frame) in enumerate(frames.items()):
            msg = image_message(frame, stamp, 'cam')
            if i == BAD:
                msg.encoding = 'yuv422'     # not an encoding the package decodes
            writer.write(images, stamp, TYPESTORE.serialize_cdr(msg, IMAGE))
            label = image_message(labels[stamp], stamp, 'cam')
            writer.write(truth, stamp, TYPESTORE.serialize_cdr(label, IMAGE))
    return out / 'broken', varied_model_file(out / 'varied.safetensors')


@pytest.fixture(scope='module')
def fused(drive, tmp_path_factory):
    """`stkd eval-bag --temporal-fusion` with labels, a report and an annotated bag."""
    bag, model = drive
    out = tmp_path_factory.mktemp('fused')
    assert main(['eval-bag', '--bag', str(bag), '--model', str(model), '--topic', IMAGE_TOPIC,
                 '--label-topic', LABEL_TOPIC, '--temporal-fusion', '--report',
                 str(out / 'report'), '--write-bag', str(out / 'annotated')]) == 0
    return out


def _read(bag, topic: str, mask: bool) -> dict:
    """Return {header stamp: frame (RGB) or mask} of each decodable message on ``topic``."""
    found = {}
    with open_bag(bag) as reader:
        for _, msgtype, _, msg in iter_messages(reader, [topic]):
            try:
                found[stamp_ns(msg)] = mask_to_array(msg) if mask else decode(msgtype, msg)
            except ImageError:
                pass
    return found


def _stream(model, frames: dict, settings=FusionSettings()):
    """Run one fused stream on ``frames`` {stamp: frame}: its masks, why each started over."""
    segmenter, fusion = Segmenter(model), TemporalFusion(settings)
    masks, resets = {}, {}
    for stamp, frame in frames.items():
        sec, nanosec = divmod(stamp, 10**9)     # as a message's header holds it
        masks[stamp] = segmenter.segment(frame, fusion=fusion, stamp=header_seconds(
            SimpleNamespace(sec=sec, nanosec=nanosec)))
        resets[stamp] = fusion.last_reset
    return masks, resets


def test_a_frame_that_fails_to_decode_is_skipped_and_the_stream_fused_on(drive, fused):
    bag, model = drive
    frames = _read(bag, IMAGE_TOPIC, mask=False)
    assert len(frames) == FRAMES - 1
    summary = json.loads((fused / 'report' / 'metrics.json').read_text())
    assert summary['rejected_frames'] == 1 and summary['frames'] == FRAMES - 1
    scored = _read(fused / 'annotated', FUSED_MASKS, mask=True)
    expected, resets = _stream(model, frames)
    assert list(scored) == list(expected)
    for stamp in expected:
        np.testing.assert_array_equal(scored[stamp], expected[stamp])
    after = list(frames)[BAD]                  # the frame after the one that failed
    assert resets[after] is None               # fused with the frame before the failed one
    per_frame = Segmenter(model).segment(frames[after])
    assert (expected[after] != per_frame).any(), 'fusion changed nothing after the bad frame'


def test_a_gap_the_stamps_show_around_the_bad_frame_starts_over(drive, tmp_path):
    """--fusion max_gap_s below two frame periods (it implies --temporal-fusion)."""
    bag, model = drive
    settings = FusionSettings(max_gap_s=0.05)
    assert main(['eval-bag', '--bag', str(bag), '--model', str(model), '--topic', IMAGE_TOPIC,
                 '--fusion', 'max_gap_s=0.05', '--write-bag', str(tmp_path / 'annotated'),
                 '--report', str(tmp_path / 'report')]) == 0
    summary = json.loads((tmp_path / 'report' / 'metrics.json').read_text())
    assert summary['temporal_fusion'] == settings.describe()
    assert summary['models']['varied + fusion']['temporal_fusion'] == settings.describe()
    frames = _read(bag, IMAGE_TOPIC, mask=False)
    scored = _read(tmp_path / 'annotated', FUSED_MASKS, mask=True)
    expected, resets = _stream(model, frames, settings)
    assert [r is None for r in resets.values()] == [i not in (0, BAD) for i in range(FRAMES - 1)]
    after = list(frames)[BAD]
    np.testing.assert_array_equal(scored[after], Segmenter(model).segment(frames[after]))
    for stamp in expected:
        np.testing.assert_array_equal(scored[stamp], expected[stamp])


def test_the_per_frame_row_is_an_eval_bag_run_without_fusion_bit_for_bit(drive):
    """Masks at every frame, every figure but latency, and the moments' full-size masks."""
    bag, model = drive

    def run(fusion):
        seen = []
        result = evaluate_bag(bag, [model], IMAGE_TOPIC, LABEL_TOPIC, fusion=fusion,
                              on_frame=lambda frame, stamp, tracks, masks: seen.append(
                                  ([t.name for t in tracks], masks)))
        return result, seen

    alone, alone_masks = run(None)
    both, both_masks = run(FusionSettings())
    assert [t.name for t in both['tracks']] == ['varied', 'varied + fusion']
    assert len(alone_masks) == len(both_masks) == FRAMES - 1
    assert any((b[1][0] != b[1][1]).any() for b in both_masks), 'fusion changed nothing'
    for (names, masks), (_, with_fused) in zip(alone_masks, both_masks):
        assert names == ['varied']
        np.testing.assert_array_equal(masks[0], with_fused[0])
    plain, per_frame = (summarize(r)['models']['varied'] for r in (alone, both))
    for entry in (plain, per_frame):
        del entry['latency_ms']
    # As JSON: a class never predicted has NaN figures, which equal nothing as floats.
    assert 'miou' in plain and json.dumps(plain) == json.dumps(per_frame)
    fused_figures = summarize(both)['models']['varied + fusion']
    assert fused_figures['flicker'] != plain['flicker']
    for kind, moment in alone['tracks'][0].moments.items():
        other = both['tracks'][0].moments[kind]
        assert moment[:2] == other[:2]
        np.testing.assert_array_equal(moment[3][0], other[3][0])


@pytest.mark.ros
def test_segment_node_with_temporal_fusion_publishes_the_masks_eval_bag_scored(drive, fused):
    """The drive played to a real segment_node (temporal_fusion): every mask eval-bag's."""
    import rclpy
    from ros_harness import (image_msg, qos, ros_env, spin_until, start_node, stop_node,
                             until_answered, wait_for_readers)
    from diagnostic_msgs.msg import DiagnosticArray
    from sensor_msgs.msg import Image
    bag, model = drive
    frames = _read(bag, IMAGE_TOPIC, mask=False)
    scored = _read(fused / 'annotated', FUSED_MASKS, mask=True)
    assert list(scored) == list(frames) and len(frames) == FRAMES - 1
    stamps = sorted(set(_read(bag, LABEL_TOPIC, mask=True)))    # every frame's, the bad one's too
    per_frame = Segmenter(model)
    assert any((scored[s] != per_frame.segment(f)).any() for s, f in frames.items()), \
        'the fusion changed no pixel: the test would not see eval-bag ignore it'

    # A replay's settings: every frame queued, masks held until this test's reader matches.
    replay = [a for k, v in SEGMENT_NODE.items() for a in ('-p', f'{k}:={v}')]
    proc = start_node('segment_node', '-p', f'model_path:={model}', '-p',
                      'temporal_fusion:=true', *replay, '-r', 'image:=/fbag/image', '-r',
                      '/segmentation/mask:=/fbag/mask')
    ros_env()
    rclpy.init()
    ros = rclpy.create_node('stkd_fusion_test')
    masks, diagnostics = [], []
    sub = ros.create_subscription(Image, '/fbag/mask', masks.append, qos(True, 50))
    diag_sub = ros.create_subscription(DiagnosticArray, '/diagnostics', diagnostics.append,
                                       qos(True, 50))
    pub = ros.create_publisher(Image, '/fbag/image', qos(True, 50))
    try:
        assert wait_for_readers(ros, [pub], 1, EVENT_TIMEOUT), 'segment_node did not subscribe'
        # Discovery may lose the first messages: warm up until answered. The warm frames'
        # stamp lies years before the drive's, so the node's state starts over at its first
        # frame, as eval-bag's does.
        first = next(iter(frames.values()))
        assert until_answered(ros, lambda: pub.publish(image_msg(first, 1, 'warm')),
                              lambda: any(m.header.frame_id == 'warm' for m in masks),
                              EVENT_TIMEOUT), 'no answer to the first frame'

        def mine():
            return [m for m in masks if m.header.frame_id != 'warm']

        for i, stamp in enumerate(stamps):
            if i == BAD:    # as in the bag: an encoding the rows of an RGB frame do not fit
                pub.publish(image_msg(first, stamp, str(i), encoding='yuv422'))
            else:
                pub.publish(image_msg(frames[stamp], stamp, str(i)))
        good = [i for i in range(FRAMES) if i != BAD]
        assert spin_until(ros, lambda: len(mine()) >= len(good), EVENT_TIMEOUT), len(mine())
        assert [int(m.header.frame_id) for m in mine()] == good
        for msg, (stamp, mask) in zip(mine(), scored.items()):
            assert stamp_ns(msg) == stamp
            np.testing.assert_array_equal(mask_to_array(msg), mask,
                                          f'frame {msg.header.frame_id}')

        def rejected():    # the node's count of frames it could not decode, as last reported
            counts = [kv.value for d in diagnostics for s in d.status
                      if s.name == 'segment_node: segmentation'
                      for kv in s.values if kv.key == 'rejected']
            return counts[-1] if counts else None

        assert spin_until(ros, lambda: rejected() == '1', EVENT_TIMEOUT), rejected()
    finally:
        stop_node(proc)
        ros.destroy_subscription(diag_sub)
        ros.destroy_subscription(sub)
        ros.destroy_publisher(pub)
        ros.destroy_node()
        rclpy.shutdown()


def test_the_report_has_both_rows_and_names_temporal_fusion_and_its_settings(fused):
    described = FusionSettings().describe()
    report = fused / 'report'
    summary = json.loads((report / 'metrics.json').read_text())
    assert summary['temporal_fusion'] == described
    assert {n: m['temporal_fusion'] for n, m in summary['models'].items()} == {
        'varied': 'off', 'varied + fusion': described}
    line = f'temporal fusion: on, {described}'
    markdown = (report / 'report.md').read_text()
    assert line in markdown and esc(line) in (report / 'report.html').read_text()
    rows = [r.split(' | ')[0] for r in markdown.splitlines() if r.startswith('| varied')]
    assert rows == ['| varied', '| varied + fusion']


def test_without_the_switch_the_report_says_each_frame_was_segmented_alone(drive, fused,
                                                                           tmp_path):
    bag, model = drive
    summary = eval_bag(bag, [model], IMAGE_TOPIC, report=tmp_path / 'report', max_frames=2)
    assert summary['temporal_fusion'] == 'off' and list(summary['models']) == ['varied']
    for page in ('report.md', 'report.html'):
        text = (tmp_path / 'report' / page).read_text()
        assert 'each frame segmented alone (temporal fusion: off)' in text, page
    # The video's rows: the frame (the legend), then each track's panel; one more with fusion.
    video = json.loads((fused / 'report' / 'metrics.json').read_text())['video']
    assert video['height'] == summary['video']['height']
    assert video['width'] * 2 == summary['video']['width'] * 3


def test_the_reports_moments_show_per_frame_and_fused_masks(drive, fused):
    """Each sample image: the frame, then the overlays of the per-frame and fused masks."""
    from stkd_ros.data.image_io import read_rgb
    bag, model = drive
    frames = _read(bag, IMAGE_TOPIC, mask=False)
    scored = _read(fused / 'annotated', FUSED_MASKS, mask=True)
    segmenter = Segmenter(model)
    moments = json.loads((fused / 'report' / 'metrics.json').read_text())['moments']
    assert {m['model'] for m in moments} == {'varied', 'varied + fusion'}
    fused_moment = False
    for moment in moments:
        sample = read_rgb(fused / 'report' / moment['file'])
        frame, alone, overlay = np.split(sample, 3, axis=1)
        stamp = next(s for s, f in frames.items() if np.array_equal(f, frame))
        np.testing.assert_array_equal(alone, segmenter.overlay(frame, segmenter.segment(frame),
                                                               0.55))
        np.testing.assert_array_equal(overlay, segmenter.overlay(frame, scored[stamp], 0.55))
        fused_moment |= bool((scored[stamp] != segmenter.segment(frame)).any())
    assert fused_moment, 'no moment where the fusion changed a pixel: the test could not fail'
