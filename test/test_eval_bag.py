"""`stkd eval-bag` on generated bags: storage formats, compressed images, labels, errors."""

import json
from pathlib import Path
import subprocess
import sys

import cv2
import numpy as np
import pytest
from rosbags.highlevel import AnyReader
from rosbags.typesys import get_typestore, Stores
from stkd_ros.bag.reader import BagError
from stkd_ros.commands.eval_bag import eval_bag
from stkd_ros.commands.synth import synth
from stkd_ros.model_file import save_model_file
from stkd_ros.models import build_model
import torch

STORE = get_typestore(Stores.ROS2_KILTED)


def _model(path, seed):
    torch.manual_seed(seed)
    save_model_file(path, build_model('bisenet_lite', 11).eval(), {
        'arch': 'bisenet_lite', 'arch_args': {}, 'num_classes': 11,
        'classes': [f'c{i}' for i in range(11)], 'palette': [[20 * i, 0, 0] for i in range(11)],
        'input_size': [64, 128], 'mean': [0.485, 0.456, 0.406], 'std': [0.229, 0.224, 0.225]})
    return path


@pytest.fixture(scope='module')
def models(tmp_path_factory):
    d = tmp_path_factory.mktemp('models')
    return [_model(d / 'a.safetensors', 0), _model(d / 'b.safetensors', 1)]


@pytest.fixture(scope='module', params=['mcap', 'sqlite3'])
def drive(request, tmp_path_factory):
    out = tmp_path_factory.mktemp(f'drive_{request.param}')
    synth(out, clips=1, frames=6, size=(64, 128), bag=True, storage=request.param)
    return out / 'bag'


@pytest.mark.slow
def test_report_metrics_and_annotated_bag(drive, models, tmp_path):
    summary = eval_bag(drive, models, '/camera/image_raw', label_topic='/camera/labels',
                       report=tmp_path / 'report', write_bag=tmp_path / 'annotated')
    assert summary['frames'] == 6 and set(summary['models']) == {'a', 'b'}
    for m in summary['models'].values():
        assert 0 <= m['miou'] <= 1 and 0 <= m['flicker'] <= 1
        assert len(m['per_class_iou']) == 11 and m['latency_ms']['p50'] > 0
    report = tmp_path / 'report'
    for name in ('report.md', 'metrics.json', 'flicker_over_time.png', 'per_class.png',
                 'latency.png', 'sample_a_least_stable.png', 'sample_b_most_stable.png'):
        assert (report / name).is_file(), name
    assert json.loads((report / 'metrics.json').read_text())['models']['a']['frames'] == 6
    text = (report / 'report.md').read_text()
    assert '| a |' in text and '| b |' in text and 'flicker_over_time.png' in text
    with AnyReader([tmp_path / 'annotated'], default_typestore=STORE) as reader:
        counts = {c.topic: c.msgcount for c in reader.connections}
    assert counts == {'/camera/image_raw': 6, '/camera/labels': 6, '/stkd/a/mask': 6,
                      '/stkd/a/color': 6, '/stkd/b/mask': 6, '/stkd/b/color': 6}


@pytest.mark.slow
def test_compressed_image_topic(models, tmp_path):
    from rosbags.rosbag2 import StoragePlugin, Writer
    bag = tmp_path / 'compressed'
    types = STORE.types
    with Writer(bag, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        conn = writer.add_connection('/cam/compressed', 'sensor_msgs/msg/CompressedImage',
                                     typestore=STORE)
        for i in range(4):
            img = np.full((48, 64, 3), 40 * i, np.uint8)
            ok, jpg = cv2.imencode('.jpg', img)
            msg = types['sensor_msgs/msg/CompressedImage'](
                header=types['std_msgs/msg/Header'](
                    stamp=types['builtin_interfaces/msg/Time'](sec=i, nanosec=0),
                    frame_id='cam'), format='jpeg', data=jpg.reshape(-1))
            writer.write(conn, i * 10**9,
                         STORE.serialize_cdr(msg, 'sensor_msgs/msg/CompressedImage'))
    summary = eval_bag(bag, models[:1], '/cam/compressed')
    assert summary['frames'] == 4 and 'miou' not in summary['models']['a']


def test_ros1_bag(models, tmp_path):
    from rosbags.rosbag1 import Writer
    ros1 = get_typestore(Stores.ROS1_NOETIC)
    types = ros1.types
    bag = tmp_path / 'drive.bag'
    with Writer(bag) as writer:
        conn = writer.add_connection('/cam/image', 'sensor_msgs/msg/Image', typestore=ros1)
        for i in range(3):
            msg = types['sensor_msgs/msg/Image'](
                header=types['std_msgs/msg/Header'](
                    seq=i, stamp=types['builtin_interfaces/msg/Time'](sec=i, nanosec=0),
                    frame_id='cam'),
                height=48, width=64, encoding='rgb8', is_bigendian=0, step=192,
                data=np.full(48 * 192, i, np.uint8))
            writer.write(conn, (i + 1) * 10**9, ros1.serialize_ros1(msg, 'sensor_msgs/msg/Image'))
    assert eval_bag(bag, models[:1], '/cam/image')['frames'] == 3


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
