"""segment_node, flicker_monitor and bag_player as real processes over real DDS."""

import re
import signal
import subprocess
import sys
import time

import cv2
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from failing_model import failing_onnx
from model_helpers import tiny_model_file, varied_model_file
import numpy as np
import pytest
from ros_harness import (image_msg, qos, ros_env, spin_until, start_node, stop_node,
                         subscription_reliability, until_answered, wait_for_readers)
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Float32
from stkd_ros.data.synthetic import SyntheticConfig, SyntheticWorld
from stkd_ros.inference import Segmenter
from stkd_ros.temporal_fusion import TemporalFusion

pytestmark = [pytest.mark.ros, pytest.mark.slow]
# Every wait below ends on an event (a mask, a count on /diagnostics, a log line, an exit);
# its timeout only bounds a failure, so a loaded machine is slower, not red.
EVENT_TIMEOUT = 60.0


@pytest.fixture(scope='module')
def model_path(tmp_path_factory):
    return tiny_model_file(tmp_path_factory.mktemp('model') / 'student.safetensors', seed=0)


@pytest.fixture(scope='module')
def frames():
    world = SyntheticWorld(SyntheticConfig(height=360, width=480, frames=12, seed=5))
    return [world.frame(0, t)[0] for t in range(12)]


def _collect(ros, topic, msg_type=Image, reliable=True):
    got = []
    sub = ros.create_subscription(msg_type, topic, got.append, qos(reliable, 50))
    return got, sub


@pytest.fixture(scope='module')
def segment_node(ros, model_path):
    proc = start_node('segment_node', '-p', f'model_path:={model_path}', '-r',
                      'image:=/cam/image', '-r', '/segmentation/mask:=/cam/mask')
    masks, sub = _collect(ros, '/cam/mask')
    yield proc, masks
    ros.destroy_subscription(sub)
    stop_node(proc)


def _wait_for_subscriber(ros, pub, timeout=EVENT_TIMEOUT):
    assert wait_for_readers(ros, [pub], 1, timeout), 'segment_node did not subscribe'


def _frame_ids(msgs) -> list:
    return [m.header.frame_id for m in msgs]


def _warm_up(ros, pubs, outputs, frame):
    """Send ``frame`` as 'warm' on each publisher until each of ``outputs`` has its result."""
    def send():
        for pub in pubs:
            pub.publish(image_msg(frame, 1, frame_id='warm'))

    assert until_answered(ros, send, lambda: all('warm' in _frame_ids(o) for o in outputs),
                          EVENT_TIMEOUT), 'no answer to the first frame'


def test_masks_have_input_size_header_and_the_segmenter_values(ros, segment_node, model_path,
                                                               frames):
    proc, masks = segment_node
    pub = ros.create_publisher(Image, '/cam/image', qos(True))
    _wait_for_subscriber(ros, pub)
    _warm_up(ros, [pub], [masks], frames[0])

    def mine():
        return [m for m in masks if m.header.frame_id.startswith('cam')]

    # One frame at a time: the node keeps only the latest frame, so a frame arriving while the
    # one before is segmented would replace it.
    for i, img in enumerate(frames[:3]):
        pub.publish(image_msg(img, 5_000_000_000 + i * 100_000_000, frame_id=f'cam{i}'))
        assert spin_until(ros, lambda: len(mine()) > i, EVENT_TIMEOUT), f'no mask for frame {i}'
    reference = Segmenter(model_path)
    for i, msg in enumerate(mine()):
        assert (msg.height, msg.width, msg.encoding, msg.step) == (360, 480, 'mono8', 480)
        assert msg.header.frame_id == f'cam{i}'
        assert msg.header.stamp.sec == 5 and msg.header.stamp.nanosec == i * 100_000_000
        got = np.frombuffer(bytes(msg.data), np.uint8).reshape(360, 480)
        np.testing.assert_array_equal(got, reference.segment(frames[i]))
    ros.destroy_publisher(pub)


def _node_counts(diags, name='segment_node: segmentation'):
    """Counters of the newest /diagnostics status called ``name``, as ints."""
    statuses = [s for d in diags for s in d.status if s.name == name]
    values = {kv.key: kv.value for kv in statuses[-1].values} if statuses else {}
    return {k: int(v) for k, v in values.items() if v.isdigit()}


def _follows(ros, reliability: str):
    """Wait until the module's segment_node subscribes to /cam/image with ``reliability``."""
    assert spin_until(ros, lambda: subscription_reliability(
        ros, '/cam/image', 'segment_node') == {reliability}, EVENT_TIMEOUT), \
        f'segment_node did not subscribe {reliability}'


@pytest.mark.parametrize('reliable', [True, False], ids=['reliable', 'best_effort'])
def test_frames_from_480x360_to_1920x1080_get_masks_of_their_size(ros, segment_node, frames,
                                                                  reliable):
    """
    Frames of 480x360, 1280x720 and 1920x1080 get masks of their size, over either QoS.

    The node follows the camera's reliability (``reliability: auto``). Each frame goes out
    once the mask of the one before is back, so the latest-frame slot drops none: over a
    reliable camera every frame gets its mask. Best effort promises no delivery, so there a
    frame whose mask is late is sent again; each of the 10 frames of a size must still come
    back (with Fast DDS's stock transports no 1280x720 frame arrives at all: README).
    """
    proc, masks = segment_node
    pub = ros.create_publisher(Image, '/cam/image', qos(reliable, 1))
    try:
        _wait_for_subscriber(ros, pub)
        _follows(ros, 'reliable' if reliable else 'best_effort')
        _warm_up(ros, [pub], [masks], frames[0])
        for n, size in enumerate(((360, 480), (720, 1280), (1080, 1920))):
            for i, frame in enumerate(frames[:10]):
                msg = image_msg(cv2.resize(frame, size[::-1]), 10 + n, frame_id=f'{size}{i}')

                def back(frame_id=msg.header.frame_id):
                    return [m for m in masks if m.header.frame_id == frame_id]

                if reliable:
                    pub.publish(msg)
                    arrived = spin_until(ros, back, EVENT_TIMEOUT)
                else:
                    arrived = until_answered(ros, lambda: pub.publish(msg), back,
                                             EVENT_TIMEOUT, every=3.0)
                assert arrived, f'{size}: no mask for frame {i}'
                assert all((m.height, m.width) == size for m in back())
    finally:
        ros.destroy_publisher(pub)


def test_bad_messages_are_counted_and_skipped(ros, segment_node, frames):
    proc, masks = segment_node
    diags, dsub = _collect(ros, '/diagnostics', DiagnosticArray)
    pub = ros.create_publisher(Image, '/cam/image', qos(True))
    try:
        _wait_for_subscriber(ros, pub)
        _follows(ros, 'reliable')
        _warm_up(ros, [pub], [masks], frames[0])
        masks.clear()
        assert spin_until(ros, lambda: 'rejected' in _node_counts(diags), EVENT_TIMEOUT)
        before = _node_counts(diags)['rejected']
        good = frames[0]
        bad = [image_msg(good, 1, encoding='yuv422'),
               image_msg(np.zeros((0, 4, 3), np.uint8), 2),
               image_msg(good, 3)]
        bad[2].step = 100                                    # step shorter than a row
        short = image_msg(good, 4)
        short.data = short.data[:1000]                       # data length does not match
        huge = image_msg(good, 5)
        huge.height = 100_000                                # absurd dimensions
        for n, msg in enumerate(bad + [short, huge], 1):
            # One at a time, each once counted: the node keeps only the latest frame.
            pub.publish(msg)
            assert spin_until(ros, lambda: _node_counts(diags)['rejected'] == before + n,
                              EVENT_TIMEOUT), f'bad message {n} was not counted'
        pub.publish(image_msg(good, 6, frame_id='after'))
        assert spin_until(ros, lambda: 'after' in _frame_ids(masks), EVENT_TIMEOUT)
        assert set(_frame_ids(masks)) <= {'warm', 'after'}, 'a bad message got a mask'
        assert _frame_ids(masks).count('after') == 1
    finally:
        ros.destroy_publisher(pub)
        ros.destroy_subscription(dsub)


def test_compressed_input(ros, model_path, frames):
    proc = start_node('segment_node', '-p', f'model_path:={model_path}', '-p',
                      'input_transport:=compressed', '-r', 'image:=/zcam/image', '-r',
                      '/segmentation/color:=/zcam/color')
    colors, sub = _collect(ros, '/zcam/color')
    pub = ros.create_publisher(CompressedImage, '/zcam/image', qos(True))
    try:
        _wait_for_subscriber(ros, pub)
        ok, jpg = cv2.imencode('.jpg', frames[0][..., ::-1])
        msg = CompressedImage(format='jpeg', data=jpg.tobytes())
        msg.header.frame_id = 'z'
        assert until_answered(ros, lambda: pub.publish(msg), lambda: colors, EVENT_TIMEOUT)
        assert (colors[0].height, colors[0].width, colors[0].encoding) == (360, 480, 'rgb8')
    finally:
        stop_node(proc)
        ros.destroy_subscription(sub)
        ros.destroy_publisher(pub)


def test_one_node_segments_several_cameras_each_under_its_own_name(ros, model_path, frames):
    """cameras: [front, rear]: one batched node; each camera's masks in its own topics."""
    proc = start_node('segment_node', '-p', f'model_path:={model_path}', '-p',
                      'cameras:=[front, rear]', '-r', '__ns:=/multi')
    sizes = {'front': (360, 480), 'rear': (240, 320)}
    got = {c: _collect(ros, f'/multi/{c}/segmentation/mask') for c in sizes}
    pubs = {c: ros.create_publisher(Image, f'/multi/{c}/image', qos(True)) for c in sizes}
    diags, dsub = _collect(ros, '/diagnostics', DiagnosticArray)
    try:
        for pub in pubs.values():
            _wait_for_subscriber(ros, pub)
        _warm_up(ros, pubs.values(), [masks for masks, _ in got.values()], frames[0])

        def mine(c):
            return [m for m in got[c][0] if m.header.frame_id != 'warm']

        reference = Segmenter(model_path)
        sent = {}
        for i in range(3):
            for c, (h, w) in sizes.items():
                sent[c, i] = cv2.resize(frames[i], (w, h))
                pubs[c].publish(image_msg(sent[c, i], 3_000_000_000 + i, frame_id=f'{c}{i}'))
            assert spin_until(ros, lambda: all(len(mine(c)) > i for c in sizes),
                              EVENT_TIMEOUT), \
                f'frame {i}: masks of {[c for c in sizes if len(mine(c)) <= i]} missing'
        for c, (h, w) in sizes.items():
            for i, msg in enumerate(mine(c)):
                assert msg.header.frame_id == f'{c}{i}' and msg.header.stamp.nanosec == i
                assert (msg.height, msg.width, msg.encoding) == (h, w, 'mono8')
                mask = np.frombuffer(bytes(msg.data), np.uint8).reshape(h, w)
                # Batched with the other camera's frame: a tie may round the other way.
                assert (mask == reference.segment(sent[c, i])).mean() > 0.999

        def per_camera():
            # The module's single-camera segment_node reports 'segment_node: segmentation'.
            return {s.name for d in diags for s in d.status
                    if s.name.startswith('segment_node: segmentation ')}

        assert spin_until(ros, lambda: len(per_camera()) == 2, EVENT_TIMEOUT), per_camera()
        assert per_camera() == {'segment_node: segmentation front',
                                'segment_node: segmentation rear'}
    finally:
        stop_node(proc)
        for _, sub in got.values():
            ros.destroy_subscription(sub)
        for pub in pubs.values():
            ros.destroy_publisher(pub)
        ros.destroy_subscription(dsub)


def test_two_workers_publish_every_mask_in_the_order_of_the_frames(ros, model_path, frames):
    """workers: 2 run two frames at once; masks still leave in frame order, none lost."""
    proc = start_node('segment_node', '-p', f'model_path:={model_path}', '-p', 'workers:=2',
                      '-p', 'threads:=1', '-p', 'frame_buffer:=20', '-p', 'qos_depth:=20',
                      '-r', 'image:=/wcam/image', '-r', '/segmentation/mask:=/wcam/mask')
    masks, sub = _collect(ros, '/wcam/mask')
    pub = ros.create_publisher(Image, '/wcam/image', qos(True, 20))
    try:
        _wait_for_subscriber(ros, pub)
        _warm_up(ros, [pub], [masks], frames[0])

        def mine():
            return [m for m in masks if m.header.frame_id != 'warm']

        for i, img in enumerate(frames):   # all at once: both workers busy
            pub.publish(image_msg(img, 4_000_000_000 + i, frame_id=str(i)))
        assert spin_until(ros, lambda: len(mine()) >= len(frames), EVENT_TIMEOUT), len(mine())
        assert [int(m.header.frame_id) for m in mine()] == list(range(len(frames)))
        reference = Segmenter(model_path)
        for msg in mine():
            got = np.frombuffer(bytes(msg.data), np.uint8).reshape(360, 480)
            np.testing.assert_array_equal(got, reference.segment(frames[int(msg.header.frame_id)]))
    finally:
        stop_node(proc)
        ros.destroy_subscription(sub)
        ros.destroy_publisher(pub)


def test_temporal_fusion_publishes_the_offline_streams_fused_masks(ros, tmp_path, frames):
    """temporal_fusion: each mask is the Segmenter's with one fusion state fed the same frames."""
    model = varied_model_file(tmp_path / 'varied.safetensors')
    proc = start_node('segment_node', '-p', f'model_path:={model}', '-p',
                      'temporal_fusion:=true', '-r', 'image:=/fcam/image', '-r',
                      '/segmentation/mask:=/fcam/mask')
    masks, sub = _collect(ros, '/fcam/mask')
    pub = ros.create_publisher(Image, '/fcam/image', qos(True))
    try:
        _wait_for_subscriber(ros, pub)
        # The warm-up frame's stamp lies seconds before the first frame's: the node's state
        # starts over there, as the reference's starts at the first frame.
        _warm_up(ros, [pub], [masks], frames[0])

        def mine():
            return [m for m in masks if m.header.frame_id != 'warm']

        stamps = [6_000_000_000 + i * 33_333_333 for i in range(6)]
        for i, stamp in enumerate(stamps):   # one at a time: the latest-frame slot drops none
            pub.publish(image_msg(frames[i], stamp, frame_id=str(i)))
            assert spin_until(ros, lambda: len(mine()) > i, EVENT_TIMEOUT), f'no mask for {i}'
        reference, fusion, fused_somewhere = Segmenter(model), TemporalFusion(), False
        for i, msg in enumerate(mine()):
            assert msg.header.frame_id == str(i)
            got = np.frombuffer(bytes(msg.data), np.uint8).reshape(360, 480)
            expected = reference.segment(frames[i], fusion=fusion, stamp=stamps[i] * 1e-9)
            np.testing.assert_array_equal(got, expected)
            fused_somewhere |= bool((expected != reference.segment(frames[i])).any())
        assert fused_somewhere, 'the fusion changed no pixel: the test would not see it off'
    finally:
        stop_node(proc)
        ros.destroy_subscription(sub)
        ros.destroy_publisher(pub)


@pytest.fixture(scope='module')
def failing_models(tmp_path_factory):
    """ONNX model files whose forward pass raises: on an all-white frame, and on every frame."""
    return {'white': failing_onnx(tmp_path_factory.mktemp('fails_on_white')),
            'always': failing_onnx(tmp_path_factory.mktemp('always_fails'), float('-inf'))}


def _records_with_a_traceback(out: str) -> list:
    """Return the node's log records (each opens a line with [LEVEL]) with a traceback."""
    return [r for r in re.split(r'\n(?=\[[A-Z]+\] )', out) if 'Traceback' in r]


def _failing_node(model, name, *ros_args):
    return start_node('segment_node', '-p', f'model_path:={model}', '-p',
                      'backend:=onnxruntime', '-r', f'__node:={name}', '-r',
                      f'image:=/{name}/image', '-r', f'/segmentation/mask:=/{name}/mask',
                      *ros_args)


def test_a_frame_that_fails_is_reported_and_the_frames_after_it_are_served(
        ros, failing_models, frames):
    """The model raises on one frame: counted, one traceback, ERROR, the next frames served."""
    name = 'fails_once'
    proc = _failing_node(failing_models['white'], name)
    masks, sub = _collect(ros, f'/{name}/mask')
    diags, dsub = _collect(ros, '/diagnostics', DiagnosticArray)
    pub = ros.create_publisher(Image, f'/{name}/image', qos(True))
    status = f'{name}: segmentation'

    def reports():
        return [s for d in diags for s in d.status if s.name == status]

    try:
        _wait_for_subscriber(ros, pub)
        _warm_up(ros, [pub], [masks], frames[0])
        pub.publish(image_msg(np.full_like(frames[0], 255), 2, frame_id='white'))
        assert spin_until(ros, lambda: _node_counts(diags, status).get('failed') == 1,
                          EVENT_TIMEOUT), 'the failed frame was not counted'
        for i, frame in enumerate(frames[1:4]):
            pub.publish(image_msg(frame, 3 + i, frame_id=f'after{i}'))
            assert spin_until(ros, lambda: f'after{i}' in _frame_ids(masks), EVENT_TIMEOUT), \
                f'no mask for frame {i} after the failed one'
        # ERROR in the report of the period the frame failed in; OK again once frames pass.
        failed = [s for s in reports() if _node_counts([DiagnosticArray(status=[s])],
                                                       status)['failed'] == 1]
        assert failed[0].level == DiagnosticStatus.ERROR, failed[0]
        assert '1 frames failed, last ModelRunError' in failed[0].message, failed[0].message
        assert spin_until(ros, lambda: reports()[-1].level == DiagnosticStatus.OK,
                          EVENT_TIMEOUT), reports()[-1]
        assert 'white' not in _frame_ids(masks)
    finally:
        out = stop_node(proc)
        ros.destroy_subscription(sub)
        ros.destroy_subscription(dsub)
        ros.destroy_publisher(pub)
    assert len(_records_with_a_traceback(out)) == 1, out
    assert 'a frame failed (1 so far)' in _records_with_a_traceback(out)[0], out
    assert proc.returncode == 0, out


def test_a_node_whose_frames_keep_failing_exits_1_after_max_consecutive_failures(
        ros, failing_models, frames):
    """The model raises on every frame: one traceback, the count throttled, then exit 1."""
    name = 'always_fails'
    proc = _failing_node(failing_models['always'], name, '-p', 'max_consecutive_failures:=3')
    masks, sub = _collect(ros, f'/{name}/mask')   # outputs nobody wants are not computed
    pub = ros.create_publisher(Image, f'/{name}/image', qos(True))
    try:
        _wait_for_subscriber(ros, pub)
        assert until_answered(ros, lambda: pub.publish(image_msg(frames[0], 1)),
                              lambda: proc.poll() is not None, EVENT_TIMEOUT, every=0.5), \
            'the node did not give up'
        out, _ = proc.communicate(timeout=EVENT_TIMEOUT)
    finally:
        stop_node(proc)
        ros.destroy_subscription(sub)
        ros.destroy_publisher(pub)
    assert proc.returncode == 1, out
    assert len(_records_with_a_traceback(out)) == 1, out   # the first failure's
    assert 'frames keep failing (2 so far, 2 in a row)' in out, out
    last = out.strip().splitlines()[-1]
    assert last.startswith('segment_node: error: 3 frames in a row failed '
                           '(max_consecutive_failures 3); last: ModelRunError: '), out
    assert 'Timeout' not in out, out   # torn down within run()'s deadline
    assert not masks


@pytest.mark.parametrize('node,args,error', [
    ('segment_node', [], 'parameter model_path is required'),
    ('segment_node', ['-p', 'model_path:={tmp}/none.safetensors'], 'model file not found'),
    ('segment_node', ['-p', 'model_path:={model}', '-p', 'backend:=onnxruntime'],
     'is not a readable ONNX model'),
    ('segment_node', ['-p', 'model_path:={model}', '-p', 'overlay_alpha:=2.0'], 'out of range'),
    ('segment_node', ['-p', 'model_path:={model}', '-p', 'cameras:=[a, a]'], 'distinct'),
    ('segment_node', ['-p', 'model_path:={model}', '-p', 'cameras:=[front, 1x]'],
     "camera name '1x'"),
    ('segment_node', ['-p', 'model_path:={model}', '-p', 'temporal_fusion:=true', '-p',
                      'workers:=2'], 'temporal_fusion fuses each frame with the one before'),
    ('segment_node', ['-p', 'model_path:={model}', '-p', 'temporal_fusion:=true', '-p',
                      'fusion_max_gap:=0.0'], 'max_gap_s must be above 0'),
    ('segment_node', ['-p', 'model_path:={model}', '-p', 'temporal_fusion:=true', '-p',
                      'fusion_flow_finest_scale:=-1'], 'flow_finest_scale must be 0 or more'),
    ('bag_player_node', ['-p', 'bag:={tmp}/none'], 'bag not found'),
    ('bag_player_node', ['-p', 'bag:={tmp}/none', '-p', 'start_delay:=-1.0'],
     'start_delay must be 0 or more'),
    ('flicker_node', ['-p', 'window:=many'], "expecting type 'INTEGER'"),
], ids=['no-model', 'missing-file', 'backend-mismatch', 'out-of-range', 'same-camera',
        'bad-camera-name', 'fusion-needs-one-worker', 'fusion-gap', 'fusion-flow-level',
        'missing-bag',
        'negative-delay', 'wrong-type'])
def test_startup_errors_print_one_line_and_exit_1(tmp_path, model_path, node, args, error):
    args = [a.format(tmp=tmp_path, model=model_path) for a in args]
    proc = start_node(node, *args)
    out, _ = proc.communicate(timeout=60)
    lines = [line for line in out.splitlines() if line.strip()]
    name = {'bag_player_node': 'bag_player', 'flicker_node': 'flicker_monitor'}.get(node, node)
    assert proc.returncode == 1, out
    assert len(lines) == 1 and lines[0].startswith(f'{name}: error: ') and error in lines[0], out


STALLED_TEARDOWN = """
import time
from rclpy.node import Node
from stkd_ros.nodes.process import run

class Stalls(Node):
    def __init__(self):
        super().__init__('stalls')

    def destroy_node(self):
        time.sleep(60)

run(Stalls, 'stalls', work=lambda node: None)
"""


def test_a_stalled_teardown_ends_at_the_deadline_and_says_where():
    proc = subprocess.run([sys.executable, '-c', STALLED_TEARDOWN], env=ros_env(), text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          timeout=30)   # 60 s without the deadline
    out = proc.stdout
    assert proc.returncode == 1, out
    assert 'Timeout' in out and 'in destroy_node' in out, out


LEFTOVER_THREAD = """
import threading
import time
from rclpy.node import Node
from stkd_ros.nodes.process import run

class LeavesAThread(Node):
    def __init__(self):
        super().__init__('leaves_a_thread')
        threading.Thread(target=time.sleep, args=(60,)).start()   # joined at interpreter exit
        self.get_logger().info('up')

run(LeavesAThread, 'leaves_a_thread', work=lambda node: None)
"""


def test_a_node_ends_with_status_0_even_when_the_interpreter_exit_would_stall():
    """Once the node is torn down the process ends: a leftover thread holds nothing up."""
    proc = subprocess.run([sys.executable, '-c', LEFTOVER_THREAD], env=ros_env(), text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          timeout=30)   # 60 s if the interpreter's exit ran
    assert proc.returncode == 0 and 'up' in proc.stdout, proc.stdout


CLEANS_UP_AFTER_CTRL_C = """
import os
import sys
import time
import rclpy
from rclpy.node import Node
from stkd_ros.nodes.process import run

def work(node):
    node.get_logger().info('up')
    while rclpy.ok():
        time.sleep(0.01)
    print('shutdown began', flush=True)
    # The node's own Python cleanup, where the second SIGINT lands: it lasts until the test
    # has sent that signal (the file), at most 30 s.
    end = time.monotonic() + 30.0
    while not os.path.exists(sys.argv[1]) and time.monotonic() < end:
        pass
    print('cleaned up', flush=True)

run(lambda: Node('cleans_up'), 'cleans_up', work=work)
"""


def _wait_for_output(log, text: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in log.read_text():
            return True
        time.sleep(0.1)
    return False


def test_ctrl_c_ends_work_through_the_context_and_a_second_one_interrupts_nothing(tmp_path):
    """Ctrl-C under launch is two SIGINTs; neither may throw into the node's Python code."""
    log, second_sent = tmp_path / 'node.log', tmp_path / 'second_sigint_sent'
    with open(log, 'w') as out:
        proc = subprocess.Popen([sys.executable, '-c', CLEANS_UP_AFTER_CTRL_C, second_sent],
                                env=ros_env(), stdout=out, stderr=subprocess.STDOUT)
    try:
        assert _wait_for_output(log, 'up', EVENT_TIMEOUT), log.read_text()
        proc.send_signal(signal.SIGINT)
        assert _wait_for_output(log, 'shutdown began', EVENT_TIMEOUT), log.read_text()
        proc.send_signal(signal.SIGINT)
        second_sent.touch()
        assert proc.wait(timeout=EVENT_TIMEOUT) == 0, log.read_text()
    finally:
        proc.kill()
    assert 'cleaned up' in log.read_text() and 'Traceback' not in log.read_text()


def test_ctrl_c_stops_the_bag_player_inside_a_gap_of_the_recording(ros, tmp_path):
    from stkd_ros.bag.writer import ImageBagWriter
    bag = tmp_path / 'gap'
    with ImageBagWriter(bag, ['/gcam/image']) as writer:
        for stamp in (1_000_000_000, 601_000_000_000):   # ten minutes apart
            writer.write('/gcam/image', np.zeros((48, 64, 3), np.uint8), stamp)
    got, sub = _collect(ros, '/gcam/image')
    proc = start_node('bag_player_node', '-p', f'bag:={bag}', '-p', 'wait_for_subscribers:=1')
    try:
        assert spin_until(ros, lambda: got, EVENT_TIMEOUT), 'the first frame did not arrive'
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)   # the gap lasts 10 minutes
        assert proc.returncode == 0 and 'Traceback' not in out, out
    finally:
        stop_node(proc)
        ros.destroy_subscription(sub)


def test_outputs_reach_reliable_and_best_effort_subscribers(ros, segment_node, frames):
    """Masks are published reliable: `ros2 bag record` (reliable) and best-effort viewers."""
    proc, masks = segment_node
    best_effort, sub = _collect(ros, '/cam/mask', reliable=False)
    pub = ros.create_publisher(Image, '/cam/image', qos(True))
    _wait_for_subscriber(ros, pub)
    try:
        def both():
            return [[m for m in got if m.header.frame_id == 'qos'] for got in (masks, best_effort)]

        # Resent until both have it: each subscriber matches the node's publisher on its own.
        assert until_answered(ros, lambda: pub.publish(image_msg(frames[0], 7, frame_id='qos')),
                              lambda: all(both()), EVENT_TIMEOUT), [len(g) for g in both()]
    finally:
        ros.destroy_subscription(sub)
        ros.destroy_publisher(pub)


def test_flicker_monitor_measures_consistent_and_flickering_masks(ros):
    proc = start_node('flicker_node', '-r', 'image:=/fcam/image', '-r',
                      '/segmentation/mask:=/fcam/mask', '-r',
                      '/segmentation/flicker:=/fcam/flicker')
    flick, sub = _collect(ros, '/fcam/flicker', Float32)
    img_pub = ros.create_publisher(Image, '/fcam/image', qos(True))
    mask_pub = ros.create_publisher(Image, '/fcam/mask', qos(True))
    try:
        assert wait_for_readers(ros, [img_pub, mask_pub], 1, EVENT_TIMEOUT)
        rng = np.random.default_rng(0)
        world = cv2.GaussianBlur(rng.integers(0, 255, (240, 700, 3), dtype=np.uint8), (0, 0), 2)
        labels = (np.arange(700)[None].repeat(240, 0) // 50).astype(np.uint8)

        def send(t, mask):
            stamp = 10_000_000_000 + t * 33_000_000
            img_pub.publish(image_msg(world[:, 4 * t:4 * t + 320], stamp))
            mask_pub.publish(image_msg(mask, stamp, encoding='mono8'))

        # The first pair, resent until a step comes back (the same pair twice is a step).
        assert until_answered(ros, lambda: send(0, labels[:, :320]), lambda: flick,
                              EVENT_TIMEOUT), 'no flicker value'
        flick.clear()
        for t in range(1, 8):   # each pair once the step before is measured
            send(t, labels[:, 4 * t:4 * t + 320] if t < 4
                 else rng.integers(0, 6, (240, 320), np.uint8))
            assert spin_until(ros, lambda: len(flick) >= t, EVENT_TIMEOUT), f'no step {t}'
        values = [m.data for m in flick]
        assert max(values[:3]) < 0.03 and min(values[4:]) > 0.5, values
    finally:
        stop_node(proc)
        for entity in (img_pub, mask_pub):
            ros.destroy_publisher(entity)
        ros.destroy_subscription(sub)


@pytest.mark.parametrize('temporal_fusion', [False, True])
def test_the_demos_replay_gives_every_frame_a_flicker_step(model_path, frames, tmp_path,
                                                           temporal_fusion):
    """Frames 10 ms apart outrun the model: a live node would drop some, a replay may not."""
    from stkd_ros.bag.writer import ImageBagWriter
    from stkd_ros.commands.replay import replay
    bag = tmp_path / 'fast'
    with ImageBagWriter(bag, ['/camera/image_raw']) as writer:
        for i, frame in enumerate(frames):
            writer.write('/camera/image_raw', frame, 1_000_000_000 + i * 10_000_000)
    result = replay(bag, model_path, '/camera/image_raw', tmp_path / 'replay', timeout=120,
                    temporal_fusion=temporal_fusion)
    assert result['steps'] == len(frames) - 1, result
    # segment_node's start line names the fusion it runs: the parameter arrived.
    said = (tmp_path / 'replay' / 'segment_node.log').read_text()
    assert ('temporal fusion flow-guided temporal fusion: ' if temporal_fusion
            else 'temporal fusion off') in said, said
    # A domain safe on Linux (0-101; 102 and up may collide with ephemeral ports), not 0.
    assert 1 <= result['domain_id'] <= 101, result


@pytest.mark.parametrize('storage', ['mcap', 'sqlite3'])
def test_bag_player_replays_with_recorded_stamps(ros, tmp_path, storage):
    from stkd_ros.bag.writer import ImageBagWriter
    bag = tmp_path / f'bag_{storage}'
    stamps = [2_000_000_000 + i * 50_000_000 for i in range(6)]
    with ImageBagWriter(bag, ['/bcam/image'], storage=storage) as writer:
        for i, s in enumerate(stamps):
            writer.write('/bcam/image', np.full((48, 64, 3), i, np.uint8), s)
    got, sub = _collect(ros, '/bcam/image')
    # rate:=2, a whole number for a float parameter, as people type it
    proc = start_node('bag_player_node', '-p', f'bag:={bag}', '-p', 'rate:=2', '-p',
                      'wait_for_subscribers:=1')
    try:
        assert spin_until(ros, lambda: len(got) >= 6, EVENT_TIMEOUT), f'{len(got)} of 6'
        received = [m.header.stamp.sec * 10**9 + m.header.stamp.nanosec for m in got]
        assert received == stamps
        assert bytes(got[3].data)[:3] == bytes([3, 3, 3])
    finally:
        stop_node(proc)
        ros.destroy_subscription(sub)
