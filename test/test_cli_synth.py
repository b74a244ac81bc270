"""`stkd synth` writes the CamVid layout and a bag that rosbags reads back."""

from pathlib import Path
import subprocess
import sys

import numpy as np
import pytest
from rosbags.highlevel import AnyReader
from rosbags.typesys import get_typestore, Stores
from stkd_ros.data.camvid import CamVidClips
from stkd_ros.data.image_io import read_flo


def _stkd(*args, check=True):
    return subprocess.run([sys.executable, '-m', 'stkd_ros.cli', *args], capture_output=True,
                          text=True, check=check)


def test_synth_writes_camvid_layout_and_bag(tmp_path):
    out = tmp_path / 'syn'
    _stkd('synth', '--out', str(out), '--clips', '2', '--frames', '4', '--size', '128x256',
          '--bag')
    assert len(list((out / 'train').glob('*.png'))) == 4
    assert len(list((out / 'valannot').glob('*.png'))) == 4
    assert read_flo(out / 'flow' / 'Syn0000_000000.flo').shape == (128, 256, 2)

    clips = CamVidClips(out, split='train', gap=1, clip_length=2)
    assert len(clips) == 4
    clip = clips[0]
    assert clip.frames.shape == (2, 128, 256, 3)
    assert set(np.unique(clip.labels[0])) <= set(range(11)) | {255}

    store = get_typestore(Stores.ROS2_KILTED)
    with AnyReader([out / 'bag'], default_typestore=store) as reader:
        topics = {c.topic: c for c in reader.connections}
        assert set(topics) == {'/camera/image_raw', '/camera/labels'}
        assert topics['/camera/image_raw'].msgtype == 'sensor_msgs/msg/Image'
        assert topics['/camera/image_raw'].msgcount == 8
        stamps = []
        for conn, stamp, raw in reader.messages(connections=[topics['/camera/image_raw']]):
            msg = reader.deserialize(raw, conn.msgtype)
            assert (msg.height, msg.width, msg.encoding, msg.step) == (128, 256, 'rgb8', 768)
            stamps.append(stamp)
        assert np.allclose(np.diff(stamps), 1e9 / 30, atol=1)
        first = next(reader.messages(connections=[topics['/camera/labels']]))
        label = reader.deserialize(first[2], 'sensor_msgs/msg/Image')
        assert label.encoding == 'mono8'
        written = CamVidClips(out, split='train', clip_length=1)[0].labels[0]
        np.testing.assert_array_equal(np.asarray(label.data).reshape(128, 256), written)
    assert (Path(out) / 'bag' / 'metadata.yaml').is_file()


def test_bad_arguments_are_one_line_errors(tmp_path):
    res = _stkd('synth', '--out', str(tmp_path / 'x'), '--size', '12by7', check=False)
    assert res.returncode == 2
    assert res.stderr.strip().splitlines()[-1] == (
        "stkd synth: error: size must look like HxW (e.g. 256x512), got '12by7'")
    (tmp_path / 'y' / 'bag').mkdir(parents=True)
    res = _stkd('synth', '--out', str(tmp_path / 'y'), '--clips', '1', '--frames', '2',
                '--size', '32x64', '--bag', check=False)
    assert res.returncode == 2 and 'already exists' in res.stderr


def test_only_errors_raised_on_purpose_become_one_line(monkeypatch, capsys):
    from stkd_ros import cli
    from stkd_ros.errors import InputError

    def failing(error):
        def command(args):
            raise error
        return command

    parser = cli.build_parser()
    args = parser.parse_args(['synth', '--out', 'x'])
    monkeypatch.setattr(cli, 'build_parser', lambda: parser)
    args.func = failing(InputError('data.root must name the camvid directory'))
    monkeypatch.setattr(parser, 'parse_args', lambda argv=None: args)
    assert cli.main([]) == 2
    assert capsys.readouterr().err.strip() == (
        'stkd synth: error: data.root must name the camvid directory')
    for bug in (KeyError('miou'), ValueError('operands could not be broadcast'),
                TypeError('unexpected keyword')):
        args.func = failing(bug)
        with pytest.raises(type(bug)):
            cli.main([])
