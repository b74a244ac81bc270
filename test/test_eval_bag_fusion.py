"""eval-bag with temporal fusion: the masks segment_node publishes, and a report saying so."""

import json

from model_helpers import varied_model_file
import numpy as np
import pytest
from stkd_ros.bag.messages import decode
from stkd_ros.bag.reader import iter_messages, open_bag
from stkd_ros.cli import main
from stkd_ros.commands.eval_bag import eval_bag
from stkd_ros.commands.synth import IMAGE_TOPIC, synth
from stkd_ros.image_msgs import mask_to_array, stamp_ns
from stkd_ros.inference import Segmenter
from stkd_ros.nodes.replay_settings import SEGMENT_NODE
from stkd_ros.report.html_page import esc
from stkd_ros.temporal_fusion import FusionSettings

pytestmark = pytest.mark.slow
FRAMES = 8
# Every wait ends on an event (a mask); the timeout only bounds a failure.
EVENT_TIMEOUT = 60.0


@pytest.fixture(scope='module')
def drive(tmp_path_factory):
    """Give a synthetic street as a 30 Hz bag, and a model whose masks vary over a frame."""
    out = tmp_path_factory.mktemp('drive')
    synth(out, clips=1, frames=FRAMES, size=(96, 160), bag=True, seed=3)
    return out / 'bag', varied_model_file(out / 'varied.safetensors')


@pytest.fixture(scope='module')
def fused(drive, tmp_path_factory):
    """`stkd eval-bag --temporal-fusion` with a report and an annotated bag."""
    bag, model = drive
    out = tmp_path_factory.mktemp('fused')
    assert main(['eval-bag', '--bag', str(bag), '--model', str(model), '--topic', IMAGE_TOPIC,
                 '--temporal-fusion', '--report', str(out / 'report'),
                 '--write-bag', str(out / 'annotated')]) == 0
    return out


def _read(bag, topic: str, mask: bool) -> dict:
    """Return {header stamp: frame (RGB) or mask} of every message on ``topic``, in order."""
    with open_bag(bag) as reader:
        return {stamp_ns(msg): mask_to_array(msg) if mask else decode(msgtype, msg)
                for _, msgtype, _, msg in iter_messages(reader, [topic])}


@pytest.mark.ros
def test_segment_node_with_temporal_fusion_publishes_the_masks_eval_bag_scored(drive, fused):
    """The drive played to a real segment_node (temporal_fusion): every mask eval-bag's."""
    import rclpy
    from ros_harness import (image_msg, qos, ros_env, spin_until, start_node, stop_node,
                             until_answered, wait_for_readers)
    from sensor_msgs.msg import Image
    bag, model = drive
    frames = _read(fused / 'annotated', IMAGE_TOPIC, mask=False)
    scored = _read(fused / 'annotated', '/stkd/varied/mask', mask=True)
    assert list(scored) == list(frames) and len(frames) == FRAMES
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
    masks = []
    sub = ros.create_subscription(Image, '/fbag/mask', masks.append, qos(True, 50))
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

        for i, (stamp, frame) in enumerate(frames.items()):
            pub.publish(image_msg(frame, stamp, str(i)))
        assert spin_until(ros, lambda: len(mine()) >= FRAMES, EVENT_TIMEOUT), len(mine())
        assert [int(m.header.frame_id) for m in mine()] == list(range(FRAMES))
        for msg, (stamp, mask) in zip(mine(), scored.items()):
            assert stamp_ns(msg) == stamp
            np.testing.assert_array_equal(mask_to_array(msg), mask,
                                          f'frame {msg.header.frame_id}')
    finally:
        stop_node(proc)
        ros.destroy_subscription(sub)
        ros.destroy_publisher(pub)
        ros.destroy_node()
        rclpy.shutdown()


def test_the_report_names_temporal_fusion_and_its_settings(fused):
    described = FusionSettings().describe()
    report = fused / 'report'
    assert json.loads((report / 'metrics.json').read_text())['temporal_fusion'] == described
    line = f'temporal fusion: on, {described}'
    assert line in (report / 'report.md').read_text()
    assert esc(line) in (report / 'report.html').read_text()


def test_without_the_switch_the_report_says_each_frame_was_segmented_alone(drive, tmp_path):
    bag, model = drive
    summary = eval_bag(bag, [model], IMAGE_TOPIC, report=tmp_path / 'report', max_frames=2)
    assert summary['temporal_fusion'] == 'off'
    for page in ('report.md', 'report.html'):
        text = (tmp_path / 'report' / page).read_text()
        assert 'each frame segmented alone (temporal fusion: off)' in text, page


def test_the_reports_moments_show_the_fused_masks(drive, fused):
    """Each sample image: the frame, then the overlay of the mask eval-bag scored there."""
    from stkd_ros.data.image_io import read_rgb
    bag, model = drive
    frames = _read(fused / 'annotated', IMAGE_TOPIC, mask=False)
    scored = _read(fused / 'annotated', '/stkd/varied/mask', mask=True)
    segmenter = Segmenter(model)
    moments = json.loads((fused / 'report' / 'metrics.json').read_text())['moments']
    assert moments
    fused_moment = False
    for moment in moments:
        sample = read_rgb(fused / 'report' / moment['file'])
        frame, overlay = np.split(sample, 2, axis=1)
        stamp = next(s for s, f in frames.items() if np.array_equal(f, frame))
        np.testing.assert_array_equal(overlay, segmenter.overlay(frame, scored[stamp], 0.55))
        fused_moment |= bool((scored[stamp] != segmenter.segment(frame)).any())
    assert fused_moment, 'no moment where the fusion changed a pixel: the test could not fail'
