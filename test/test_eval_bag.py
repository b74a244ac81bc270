"""`stkd eval-bag` on generated bags: storage formats, compressed images, labels, errors."""

import json
from pathlib import Path
import shutil
import subprocess
import sys

from bag_helpers import ros1_image_bag
import cv2
from model_helpers import tiny_model_file
import numpy as np
import pytest
from stkd_ros import inference
from stkd_ros.bag.messages import IMAGE, image_message, TYPESTORE
from stkd_ros.bag.reader import BagError
from stkd_ros.cli import main
from stkd_ros.commands.bag_evaluation import evaluate_bag
from stkd_ros.commands.eval_bag import eval_bag
from stkd_ros.commands.synth import synth
from stkd_ros.data.synthetic import SyntheticConfig, SyntheticWorld
from stkd_ros.inference import ModelRunError, Segmenter
from stkd_ros.model_file import read_metadata, save_model_file
from stkd_ros.models import build_model
from stkd_ros.models.lraspp import LRASPPMobileNetV3
from stkd_ros.report.drive_report import summarize
import torch


@pytest.fixture(scope='module')
def models(tmp_path_factory):
    d = tmp_path_factory.mktemp('models')
    return [tiny_model_file(d / 'a.safetensors', 0), tiny_model_file(d / 'b.safetensors', 1)]


@pytest.fixture(scope='module', params=['mcap', 'sqlite3'])
def drive(request, tmp_path_factory):
    out = tmp_path_factory.mktemp(f'drive_{request.param}')
    synth(out, clips=1, frames=6, size=(64, 128), bag=True, storage=request.param)
    return out / 'bag'


@pytest.fixture(scope='module')
def evaluated(drive, models, tmp_path_factory):
    """eval-bag with a report and an annotated bag, once per storage format."""
    out = tmp_path_factory.mktemp('evaluated')
    summary = eval_bag(drive, models, '/camera/image_raw', label_topic='/camera/labels',
                       report=out / 'report', write_bag=out / 'annotated')
    return summary, out


@pytest.mark.slow
def test_report_metrics_and_annotated_bag(evaluated):
    summary, out = evaluated
    assert summary['frames'] == 6 and set(summary['models']) == {'a', 'b'}
    for m in summary['models'].values():
        assert 0 <= m['miou'] <= 1 and 0 <= m['flicker'] <= 1
        assert len(m['per_class_iou']) == 11 and m['latency_ms']['p50'] > 0
    report = out / 'report'
    for name in ('report.md', 'report.html', 'drive.mp4', 'metrics.json',
                 'flicker_over_time.png', 'per_class.png', 'latency.png',
                 'sample_a_least_stable.png', 'sample_b_most_stable.png'):
        assert (report / name).is_file(), name
    assert json.loads((report / 'metrics.json').read_text())['models']['a']['frames'] == 6
    text = (report / 'report.md').read_text()
    assert '| a |' in text and '| b |' in text and 'flicker_over_time.png' in text
    assert summary['annotated_bag'] == str(out / 'annotated')
    assert sorted(p.name for p in out.iterdir()) == ['annotated', 'report']   # nothing partial


@pytest.mark.slow
def test_annotated_bag_reads_back_with_the_official_mcap_reader(evaluated, models):
    # What Foxglove and `ros2 bag` rely on: the mcap library with its ROS 2 decoder (not
    # rosbags, which wrote the file) decodes every message, and each mask holds the class ids
    # the model gives for that frame.
    from mcap.reader import make_reader
    from mcap_ros2.decoder import DecoderFactory
    summary, out = evaluated
    segmenters = {'a': Segmenter(models[0]), 'b': Segmenter(models[1])}
    frames, masks, colors, counts = {}, {}, {}, {}
    (path,) = (out / 'annotated').glob('*.mcap')
    with open(path, 'rb') as f:
        reader = make_reader(f, decoder_factories=[DecoderFactory()])
        assert reader.get_header().profile == 'ros2'
        for schema, channel, message, msg in reader.iter_decoded_messages():
            assert (schema.encoding, channel.message_encoding) == ('ros2msg', 'cdr')
            counts[channel.topic] = counts.get(channel.topic, 0) + 1
            stamp = msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec
            shape = (msg.height, msg.width) + ((3,) if msg.encoding == 'rgb8' else ())
            pixels = np.frombuffer(msg.data, np.uint8).reshape(shape)
            if channel.topic == '/camera/image_raw':
                frames[stamp] = pixels
            elif channel.topic.endswith('/mask'):
                assert msg.encoding == 'mono8'
                masks[channel.topic.split('/')[2], stamp] = pixels
            elif channel.topic.endswith('/color'):
                colors[channel.topic.split('/')[2], stamp] = pixels
    assert counts == {'/camera/image_raw': 6, '/camera/labels': 6, '/stkd/a/mask': 6,
                      '/stkd/a/color': 6, '/stkd/b/mask': 6, '/stkd/b/color': 6}
    assert {stamp for _, stamp in masks} == set(frames)
    for (name, stamp), mask in masks.items():
        expected = segmenters[name].segment(frames[stamp])
        np.testing.assert_array_equal(mask, expected)
        np.testing.assert_array_equal(colors[name, stamp], segmenters[name].colorize(expected))


@pytest.fixture(scope='module')
def street(tmp_path_factory):
    """Give four 48x64 frames of a synthetic street and a model whose masks follow them."""
    world = SyntheticWorld(SyntheticConfig(height=48, width=64, frames=4, seed=8))
    # A narrow std: an untrained model then tells the street's parts apart (and its colours).
    model = tiny_model_file(tmp_path_factory.mktemp('street') / 'street.safetensors', 0,
                            mean=[0.5] * 3, std=[0.05] * 3)
    return [world.frame(0, t)[0] for t in range(4)], model


def _pass(bag, model, topic):
    """Evaluate ``model`` over ``topic``: the summary, and {stamp: (frame, mask)} in order."""
    seen = {}

    def record(frame, stamp, tracks, masks):
        seen[stamp] = frame, masks[0]

    summary = summarize(evaluate_bag(bag, [model], topic, on_frame=record))
    return summary, seen


def _figures(summary) -> str:
    """Return what a summary measures, but the source and the times (JSON: NaN compares)."""
    models = {name: {k: v for k, v in m.items() if k != 'latency_ms'}
              for name, m in summary['models'].items()}
    return json.dumps({**summary, 'bag': None, 'topic': None, 'models': models}, sort_keys=True)


def _assert_the_masks_of(seen, frames, model):
    """Check that the pass saw ``frames`` in order, each mask the Segmenter's at full size."""
    segmenter = Segmenter(model)
    assert list(seen) == [_stamp(i) for i in range(len(frames))]
    for (frame, mask), expected in zip(seen.values(), frames):
        np.testing.assert_array_equal(frame, expected)
        assert mask.shape == frame.shape[:2]
        np.testing.assert_array_equal(mask, segmenter.segment(expected))


@pytest.mark.slow
@pytest.mark.parametrize('fmt', ['png', 'jpeg'])
def test_a_compressed_topic_gives_the_masks_of_its_decoded_frames(street, tmp_path, fmt):
    frames, model = street
    bag = _image_bag(tmp_path / 'drive', frames, compressed=fmt)
    raw_summary, raw = _pass(bag, model, '/cam/image')
    summary, packed = _pass(bag, model, '/cam/image/compressed')
    _assert_the_masks_of(raw, frames, model)
    assert len(set(np.concatenate([m.ravel() for _, m in raw.values()]))) > 2
    # PNG is lossless: the raw topic's very frames, masks and figures. JPEG: the masks of
    # the frames its bytes decode to, in RGB order (a swap changes a fifth of these masks).
    _assert_the_masks_of(packed, [_compressed(f, fmt)[2] for f in frames], model)
    assert 'miou' not in summary['models']['street']
    if fmt == 'png':
        assert _figures(summary) == _figures(raw_summary)


@pytest.mark.parametrize('publishers', [1, 2])
def test_a_ros1_bag_gives_the_masks_and_figures_of_the_same_drive_in_ros2(street, tmp_path,
                                                                          publishers):
    # Two publishers: the topic comes over two connections, read whole in time order.
    frames, model = street
    ros2_summary, ros2 = _pass(_image_bag(tmp_path / 'ros2', frames), model, '/cam/image')
    ros1_summary, ros1 = _pass(ros1_image_bag(tmp_path / 'drive.bag', frames, '/cam/image',
                                              [_stamp(i) for i in range(len(frames))],
                                              publishers), model, '/cam/image')
    _assert_the_masks_of(ros2, frames, model)
    _assert_the_masks_of(ros1, frames, model)
    assert _figures(ros1_summary) == _figures(ros2_summary)


def _cli(*args):
    return subprocess.run([sys.executable, '-m', 'stkd_ros.cli', 'eval-bag', *args],
                          capture_output=True, text=True)


@pytest.mark.slow
def test_missing_bag_topic_and_corrupt_bag_are_one_line_errors(drive, models, tmp_path):
    with pytest.raises(BagError, match=r'topic /nope is not in the bag \(it has: '):
        eval_bag(drive, models[:1], '/nope')
    res = _cli('--bag', str(tmp_path / 'missing'), '--model', str(models[0]), '--topic', '/x')
    assert res.returncode == 2
    assert res.stderr.strip().splitlines()[-1].startswith('stkd eval-bag: error: bag not found')
    corrupt = tmp_path / 'corrupt'
    corrupt.mkdir()
    (corrupt / 'metadata.yaml').write_text('not: [a bag')
    (corrupt / 'corrupt_0.mcap').write_bytes(b'\x89MCAP0\r\n' + b'\0' * 50)
    res = _cli('--bag', str(corrupt), '--model', str(models[0]), '--topic', '/x')
    assert res.returncode == 2
    last = res.stderr.strip().splitlines()[-1]
    assert last.startswith('stkd eval-bag: error: cannot read bag'), last
    assert Path(models[0]).is_file()


def _stamp(i: int) -> int:
    return (i + 1) * 10**8   # 10 Hz


def _noise(count: int) -> list:
    rng = np.random.default_rng(1)
    return [rng.integers(0, 255, (48, 64, 3), np.uint8) for _ in range(count)]


def _compressed(frame, fmt: str):
    """Encode a frame as image_transport's compressed plugin does: format, bytes, decoded."""
    ok, data = cv2.imencode({'png': '.png', 'jpeg': '.jpg'}[fmt], frame[..., ::-1])
    assert ok
    decoded = cv2.imdecode(data, cv2.IMREAD_COLOR)[..., ::-1]
    return f'rgb8; {fmt} compressed bgr8', data.reshape(-1), decoded


def _image_bag(path, frames, corrupt_at: int = None, compressed: str = None, first: int = 0):
    """
    Write RGB ``frames`` on /cam/image (ROS 2, MCAP) at 10 Hz; one may be garbage.

    ``compressed`` ('png' or 'jpeg'): the same frames on /cam/image/compressed too.
    ``first``: the index of the first frame in the drive (a later part of a split drive).
    """
    from rosbags.rosbag2 import StoragePlugin, Writer
    packed = 'sensor_msgs/msg/CompressedImage'
    with Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        conn = writer.add_connection('/cam/image', IMAGE, typestore=TYPESTORE)
        if compressed:
            conn_c = writer.add_connection('/cam/image/compressed', packed, typestore=TYPESTORE)
        for i, frame in enumerate(frames, first):
            msg = image_message(frame, _stamp(i), 'cam')
            raw = TYPESTORE.serialize_cdr(msg, IMAGE)
            writer.write(conn, _stamp(i), b'\x00\x01garbage' if i == corrupt_at else raw)
            if compressed:
                fmt, data, _ = _compressed(frame, compressed)
                msg_c = TYPESTORE.types[packed](header=msg.header, format=fmt, data=data)
                writer.write(conn_c, _stamp(i), TYPESTORE.serialize_cdr(msg_c, packed))
    return path


def _assert_nothing_written(folder):
    """No report, and nothing half-written beside where it would have gone."""
    assert not folder.exists()
    assert not [p.name for p in folder.parent.iterdir() if '.partial' in p.name]


@pytest.mark.slow
def test_a_bag_that_breaks_mid_drive_leaves_no_report(models, tmp_path):
    bag = _image_bag(tmp_path / 'broken', _noise(6), corrupt_at=4)
    with pytest.raises(BagError, match='corrupt message on /cam/image'):
        eval_bag(bag, models[:1], '/cam/image', report=tmp_path / 'report',
                 write_bag=tmp_path / 'annotated')
    _assert_nothing_written(tmp_path / 'report')
    assert not (tmp_path / 'annotated').exists()
    res = _cli('--bag', str(bag), '--model', str(models[0]), '--topic', '/cam/image',
               '--report', str(tmp_path / 'report'))
    assert res.returncode == 2
    assert res.stderr.strip().splitlines()[-1].startswith(
        'stkd eval-bag: error: corrupt message on /cam/image'), res.stderr
    _assert_nothing_written(tmp_path / 'report')


def test_an_empty_drive_is_a_one_line_error(models, tmp_path):
    bag = _image_bag(tmp_path / 'empty', _noise(0))
    res = _cli('--bag', str(bag), '--model', str(models[0]), '--topic', '/cam/image',
               '--report', str(tmp_path / 'report'))
    assert res.returncode == 2
    assert res.stderr.strip().splitlines()[-1] == (
        f'stkd eval-bag: error: no decodable frame on /cam/image in {bag}'), res.stderr
    _assert_nothing_written(tmp_path / 'report')


def _lraspp_model_file(path, like):
    """Write another architecture with ``like``'s metadata, so that one forward can fail."""
    meta = {**read_metadata(like), 'arch': 'lraspp_mobilenetv3'}
    save_model_file(path, build_model('lraspp_mobilenetv3', 11).eval(), meta)
    return path


def test_a_model_whose_network_raises_is_named_in_one_line(models, tmp_path, monkeypatch,
                                                           capsys):
    # The model file's network fails on the second frame (as a GPU out of memory does): the
    # user's problem, said in one line that names the model and the frame.
    broken = _lraspp_model_file(tmp_path / 'broken.safetensors', models[0])
    bag = _image_bag(tmp_path / 'drive', _noise(3))
    real_forward, calls = LRASPPMobileNetV3.forward, []

    def forward(self, x):
        calls.append(x.shape)
        if len(calls) == 2:
            raise torch.OutOfMemoryError('CUDA out of memory. Tried to allocate 2.00 GiB\nmore')
        return real_forward(self, x)

    monkeypatch.setattr(LRASPPMobileNetV3, 'forward', forward)
    with pytest.raises(ModelRunError, match=r'^model broken failed on frame 2 of /cam/image '
                                            r'\(stamp 200000000\): OutOfMemoryError: CUDA '
                                            r'out of memory. Tried to allocate 2.00 GiB$'):
        eval_bag(bag, [models[0], broken], '/cam/image', report=tmp_path / 'report',
                 write_bag=tmp_path / 'annotated')
    _assert_nothing_written(tmp_path / 'report')
    assert not (tmp_path / 'annotated').exists()
    calls.clear()
    assert main(['eval-bag', '--bag', str(bag), '--model', str(models[0]), '--model',
                 str(broken), '--topic', '/cam/image', '--report', str(tmp_path / 'report'),
                 '--write-bag', str(tmp_path / 'annotated')]) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [
        'stkd eval-bag: error: model broken failed on frame 2 of /cam/image (stamp 200000000): '
        'OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB'], err
    _assert_nothing_written(tmp_path / 'report')
    _assert_nothing_written(tmp_path / 'annotated')


def test_a_model_file_that_cannot_run_any_frame_is_named_at_load(models, tmp_path):
    # Normalization with two values for three channels: the file is refused before the pass.
    broken = tiny_model_file(tmp_path / 'broken.safetensors', 2, mean=[0.5, 0.5])
    bag = _image_bag(tmp_path / 'drive', _noise(3))
    res = _cli('--bag', str(bag), '--model', str(models[0]), '--model', str(broken),
               '--topic', '/cam/image', '--report', str(tmp_path / 'report'))
    assert res.returncode == 2 and 'Traceback' not in res.stderr
    assert res.stderr.strip().splitlines()[-1] == (
        f'stkd eval-bag: error: {broken}: normalization mean and std need one value per '
        f'channel (R, G, B), got [0.5, 0.5] and [0.229, 0.224, 0.225]'), res.stderr
    _assert_nothing_written(tmp_path / 'report')


@pytest.mark.parametrize('step', ['model_input', 'resize_classes'])
def test_a_bug_on_the_frame_path_keeps_its_traceback(models, tmp_path, monkeypatch, step):
    # The package's own preprocessing or postprocessing raising is a bug, not the model's
    # fault: it reaches the command line unchanged (which shows its traceback).
    def bug(*args, **kwargs):
        raise IndexError(f'a bug in {step}')

    monkeypatch.setattr(inference, step, bug)
    bag = _image_bag(tmp_path / 'drive', _noise(3))
    with pytest.raises(IndexError, match=f'^a bug in {step}$'):
        main(['eval-bag', '--bag', str(bag), '--model', str(models[0]), '--topic',
              '/cam/image', '--report', str(tmp_path / 'report')])
    _assert_nothing_written(tmp_path / 'report')


@pytest.mark.slow
def test_a_drive_of_one_frame_gets_a_report_that_says_so(models, tmp_path):
    bag = _image_bag(tmp_path / 'one', _noise(1))
    summary = eval_bag(bag, models[:1], '/cam/image', report=tmp_path / 'report')
    assert summary['frames'] == 1 and np.isnan(summary['models']['a']['flicker'])
    report = tmp_path / 'report'
    for name in ('report.md', 'report.html'):
        text = (report / name).read_text()
        assert 'The drive has one frame: there is no pair of frames' in text, name
        assert '| a | n/a |' in text or '<td>a</td><td>n/a</td>' in text, name
    assert summary['video']['frames'] == 1 and (report / 'drive.mp4').stat().st_size > 0


@pytest.mark.slow
def test_a_report_replaces_an_earlier_one_and_nothing_else(models, tmp_path):
    bag = _image_bag(tmp_path / 'drive', _noise(2))
    report = tmp_path / 'report'
    eval_bag(bag, models[:1], '/cam/image', report=report)
    (report / 'old_note.txt').write_text('from the earlier run')
    eval_bag(bag, models[:1], '/cam/image', report=report)
    assert (report / 'report.html').is_file() and not (report / 'old_note.txt').exists()
    mine = tmp_path / 'mine'
    mine.mkdir()
    (mine / 'thesis.tex').write_text('not a report')
    with pytest.raises(FileExistsError, match='is not an earlier output of this command'):
        eval_bag(bag, models[:1], '/cam/image', report=mine)
    with pytest.raises(FileExistsError, match=f'^{mine} already exists; choose a new path$'):
        eval_bag(bag, models[:1], '/cam/image', write_bag=mine)   # a bag is never replaced
    assert [p.name for p in mine.iterdir()] == ['thesis.tex']


# --- labels matched in a bounded window ---------------------------------------------------

def _labeled_bag(path, frames, labels, order):
    """
    Write ``frames`` on /cam/image and ``labels`` {index: label} on /cam/labels (ROS 2, MCAP).

    ``order(i)``: where frame i's label goes in the bag: -1 before the frame, +1 after it.
    A label of an index without a frame has a stamp no frame has.
    """
    from rosbags.rosbag2 import StoragePlugin, Writer
    with Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        image = writer.add_connection('/cam/image', IMAGE, typestore=TYPESTORE)
        label = writer.add_connection('/cam/labels', IMAGE, typestore=TYPESTORE)
        for i in range(max(len(frames), max(labels) + 1)):
            parts = []
            if i < len(frames):
                parts.append((0, image, image_message(frames[i], _stamp(i), 'cam')))
            if i in labels:
                parts.append((order(i), label, image_message(labels[i], _stamp(i), 'cam')))
            for _, conn, msg in sorted(parts, key=lambda p: p[0]):
                writer.write(conn, _stamp(i), TYPESTORE.serialize_cdr(msg, IMAGE))
    return path


def _reference_miou(masks, labels, classes) -> float:
    """Return mIoU of every mask scored against its label, all held at once."""
    from stkd_ros.metrics import ConfusionMatrix
    confusion = ConfusionMatrix(len(classes))
    for i, mask in enumerate(masks):
        if i in labels:
            confusion.update(torch.from_numpy(mask), torch.from_numpy(labels[i]))
    return confusion.summary(list(classes))['miou']


@pytest.mark.slow
def test_labels_held_stay_bounded_over_a_long_drive(tmp_path, monkeypatch):
    # 100 labeled frames (the window is 30), labels before or after their frame, and 5
    # labels of no frame: the label arrays alive at each frame stay within the window (the
    # pass used to keep every label of the drive), the 5 are counted, and mIoU is that of
    # every frame's mask scored against its own label. The model runs at 32x32, not its
    # usual 64x128: what is measured here is the pass, not the network (8x fewer pixels).
    import weakref
    from stkd_ros.commands import bag_evaluation
    rng = np.random.default_rng(3)
    frames = [rng.integers(0, 255, (24, 32, 3), np.uint8) for _ in range(100)]
    labels = {i: rng.integers(0, 11, (24, 32), np.uint8)
              for i in list(range(100)) + [110, 120, 130, 140, 150]}
    bag = _labeled_bag(tmp_path / 'long', frames, labels, lambda i: 1 if i % 3 else -1)
    alive, held, masks = [], [], []
    real = bag_evaluation.mask_to_array

    def observed(msg):
        array = real(msg)
        alive.append(weakref.ref(array))
        return array

    def count(frame, stamp, tracks, small):
        assert small[0].shape == frame.shape[:2]    # the working size is the full size
        masks.append(small[0])
        held.append(sum(r() is not None for r in alive))

    monkeypatch.setattr(bag_evaluation, 'mask_to_array', observed)
    model = tiny_model_file(tmp_path / 'a.safetensors', 0, input_size=[32, 32])
    result = evaluate_bag(bag, [model], '/cam/image', '/cam/labels', on_frame=count)
    assert len(held) == 100 and len(alive) == 105
    assert max(held) <= 31, max(held)
    summary = summarize(result)
    assert summary['unmatched_labels'] == 5 and summary['labeled']
    assert summary['models']['a']['miou'] == pytest.approx(
        _reference_miou(masks, labels, result['tracks'][0].segmenter.classes), abs=1e-12)


@pytest.mark.slow
def test_the_synthetic_drive_scores_every_frame_against_its_label(drive, models):
    from stkd_ros.bag.messages import decode
    from stkd_ros.bag.reader import iter_messages, open_bag
    from stkd_ros.image_msgs import mask_to_array, stamp_ns
    frames, labels = {}, {}
    with open_bag(drive) as reader:
        for topic, msgtype, _, msg in iter_messages(reader, ['/camera/image_raw',
                                                             '/camera/labels']):
            if topic == '/camera/labels':
                labels[stamp_ns(msg)] = mask_to_array(msg)
            else:
                frames[stamp_ns(msg)] = decode(msgtype, msg)
    order = sorted(frames)
    segmenter = Segmenter(models[0])
    summary = summarize(evaluate_bag(drive, [models[0]], '/camera/image_raw', '/camera/labels'))
    assert summary['unmatched_labels'] == 0 and len(labels) == 6
    assert summary['models']['a']['miou'] == pytest.approx(_reference_miou(
        [segmenter.segment(frames[s]) for s in order],
        {i: labels[s] for i, s in enumerate(order)}, segmenter.classes), abs=1e-12)


# --- the annotated bag, written in the one pass ----------------------------------------

def _annotated(path) -> dict:
    """Return {topic: [(bag time, header stamp, pixels)]} of every message in bag ``path``."""
    from stkd_ros.bag.messages import decode
    from stkd_ros.bag.reader import iter_messages, open_bag
    from stkd_ros.image_msgs import stamp_ns
    out = {}
    with open_bag(path) as reader:
        topics = sorted({c.topic for c in reader.connections})
        for topic, msgtype, at, msg in iter_messages(reader, topics):
            pixels = np.asarray(msg.data) if msg.encoding == 'mono8' else decode(msgtype, msg)
            out.setdefault(topic, []).append((at, stamp_ns(msg), pixels.reshape(
                (msg.height, msg.width, -1)).squeeze(-1) if msg.encoding == 'mono8'
                else pixels))
    return out


def test_the_annotated_bag_holds_the_masks_the_pass_scored(street, tmp_path):
    frames, model = street
    bag = _image_bag(tmp_path / 'drive', frames)
    seen = {}
    evaluate_bag(bag, [model], '/cam/image', write_bag=tmp_path / 'annotated',
                 on_frame=lambda f, stamp, t, masks: seen.setdefault(stamp, masks[0]))
    written = _annotated(tmp_path / 'annotated')
    assert sorted(written) == ['/cam/image', '/stkd/street/color', '/stkd/street/mask']
    assert [(at, stamp) for at, stamp, _ in written['/stkd/street/mask']] == [
        (_stamp(i), _stamp(i)) for i in range(4)]
    for _, stamp, mask in written['/stkd/street/mask']:
        np.testing.assert_array_equal(mask, seen[stamp])
    colorize = Segmenter(model).colorize
    for (_, _, color), mask in zip(written['/stkd/street/color'], seen.values()):
        np.testing.assert_array_equal(color, colorize(mask))
    for (_, _, frame), expected in zip(written['/cam/image'], frames):
        np.testing.assert_array_equal(frame, expected)


def test_write_bag_runs_each_model_once_per_frame_and_stops_at_max_frames(models, tmp_path,
                                                                          monkeypatch):
    from stkd_ros.models.bisenet import BiSeNetLite
    bag = _image_bag(tmp_path / 'drive', _noise(5))
    real_forward, calls = BiSeNetLite.forward, []

    def forward(self, x):
        calls.append(x.shape)
        return real_forward(self, x)

    monkeypatch.setattr(BiSeNetLite, 'forward', forward)
    summary = eval_bag(bag, models[:1], '/cam/image', write_bag=tmp_path / 'annotated',
                       max_frames=3)
    assert summary['frames'] == 3 and len(calls) == 3
    written = _annotated(tmp_path / 'annotated')
    assert {t: len(m) for t, m in written.items()} == {
        '/cam/image': 3, '/stkd/a/mask': 3, '/stkd/a/color': 3}


# --- a drive split into several bags or files ------------------------------------------

def _split(tmp_path, frames):
    """Write ``frames`` as one bag and as two bags (frames 0-1, 2-3) in one folder."""
    whole = _image_bag(tmp_path / 'whole', frames)
    parts = tmp_path / 'parts'
    parts.mkdir()
    _image_bag(parts / 'drive_0', frames[:2])
    _image_bag(parts / 'drive_1', frames[2:], first=2)
    return whole, parts


def test_a_drive_split_in_two_gives_the_masks_and_figures_of_the_whole(street, tmp_path):
    frames, model = street
    whole, parts = _split(tmp_path, frames)
    files = tmp_path / 'files'            # the bare MCAP files, without their metadata
    files.mkdir()
    for part in ('drive_0', 'drive_1'):
        shutil.copy(parts / part / f'{part}.mcap', files)
    whole_summary, whole_seen = _pass(whole, model, '/cam/image')
    _assert_the_masks_of(whole_seen, frames, model)
    for source in (parts, files, f'{files}/drive_*.mcap', f'{parts}/drive_?'):
        summary, seen = _pass(source, model, '/cam/image')
        _assert_the_masks_of(seen, frames, model)
        assert _figures(summary) == _figures(whole_summary), source


def test_an_empty_glob_and_a_folder_without_bags_are_one_line_errors(models, tmp_path):
    (tmp_path / 'notes').mkdir()
    (tmp_path / 'notes' / 'readme.txt').write_text('no bag here')
    for source, line in (
            (f'{tmp_path}/drive_*.mcap', f'no bag matches {tmp_path}/drive_*.mcap (a bag is a '
                                         f'ROS 2 bag folder or a .bag, .mcap, .db3 file)'),
            (f'{tmp_path}/notes', f'folder {tmp_path}/notes holds no bag (a ROS 2 bag folder '
                                  f'with metadata.yaml, or .bag, .mcap, .db3 files)')):
        res = _cli('--bag', source, '--model', str(models[0]), '--topic', '/cam/image')
        assert res.returncode == 2
        assert res.stderr.strip().splitlines() == [f'stkd eval-bag: error: {line}'], res.stderr


def test_a_split_drive_is_annotated_into_one_bag(models, tmp_path):
    frames = _noise(4)
    _, parts = _split(tmp_path, frames)
    eval_bag(parts, models[:1], '/cam/image', write_bag=tmp_path / 'annotated')
    written = _annotated(tmp_path / 'annotated')
    assert {t: [at for at, _, _ in m] for t, m in written.items()} == {
        t: [_stamp(i) for i in range(4)] for t in ('/cam/image', '/stkd/a/mask', '/stkd/a/color')}
    for (_, _, frame), expected in zip(written['/cam/image'], frames):
        np.testing.assert_array_equal(frame, expected)
