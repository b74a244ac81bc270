"""
Where a drive's frames come from: a topic over several connections, a drive split in parts.

Every reader of a topic (eval-bag's pass, training's and ``stkd label``'s BagVideo) goes
through ``stkd_ros.bag.reader``; these bags are written with rosbags' own writers, as a
recorder with two publishers or a split recording writes them.
"""

import shutil

from bag_helpers import ros1_image_bag
import numpy as np
import pytest
from rosbags.interfaces import (Qos, QosDurability, QosHistory, QosLiveliness, QosReliability,
                                QosTime)
from rosbags.rosbag2 import StoragePlugin, Writer as Writer2
from stkd_ros.bag.messages import IMAGE, image_message, TYPESTORE
from stkd_ros.bag.reader import BagError, iter_messages, open_bag
from stkd_ros.data.bag_video import BagVideo
from stkd_ros.image_msgs import stamp_ns

TOPIC = '/cam/image'
PACKED = 'sensor_msgs/msg/CompressedImage'


def _stamp(i: int) -> int:
    return (i + 1) * 10**8   # 10 Hz


SIZE = (24, 32)


def _frames(count: int) -> list:
    """Smooth frames, each its own colour: the frame cache's JPEG keeps them within a level."""
    ramp = np.linspace(0, 40, SIZE[1])[None, :, None]
    return [np.broadcast_to(ramp + [30 * i, 200 - 30 * i, 100], SIZE + (3,)).astype(np.uint8)
            for i in range(count)]


def _ros2_two_publishers(path, frames, second_type: str = IMAGE):
    """Write ``frames`` on TOPIC from two publishers (two connections), alternating."""
    with Writer2(path, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        conns = [writer.add_connection(TOPIC, IMAGE, typestore=TYPESTORE),
                 writer.add_connection(TOPIC, second_type, typestore=TYPESTORE,
                                       offered_qos_profiles=[_BEST_EFFORT])]
        for i, frame in enumerate(frames):
            msg = image_message(frame, _stamp(i), 'cam')
            writer.write(conns[i % 2], _stamp(i), TYPESTORE.serialize_cdr(msg, IMAGE))
    return path


# The second publisher's QoS, which makes it a connection of its own in a ROS 2 bag.
_NEVER = QosTime(0, 0)
_BEST_EFFORT = Qos(QosHistory.KEEP_LAST, 1, QosReliability.BEST_EFFORT, QosDurability.VOLATILE,
                   _NEVER, _NEVER, QosLiveliness.AUTOMATIC, _NEVER, False)


def _ros1_two_publishers(path, frames):
    """Write ``frames`` on TOPIC of a ROS 1 bag from two nodes (two caller ids), alternating."""
    return ros1_image_bag(path, frames, TOPIC, [_stamp(i) for i in range(len(frames))],
                          publishers=2)


def _decoded(video: BagVideo) -> list:
    (name, count), = video.list_sequences()
    return [video.sequence_frame(name, t)[0] for t in range(count)]


def _assert_same_frames(decoded: list, frames: list):
    """Check the frames in order, as the cache's JPEG keeps them (frames differ by 30 levels)."""
    assert len(decoded) == len(frames)
    for got, expected in zip(decoded, frames):
        np.testing.assert_allclose(got, expected, atol=4)


@pytest.mark.parametrize('write', [_ros2_two_publishers, _ros1_two_publishers],
                         ids=['ros2', 'ros1'])
def test_a_topic_from_two_publishers_is_read_whole_in_time_order(tmp_path, write):
    frames = _frames(6)
    bag = write(tmp_path / ('drive' if write is _ros2_two_publishers else 'drive.bag'), frames)
    with open_bag(bag) as reader:
        assert sum(c.topic == TOPIC for c in reader.connections) == 2
        stamps = [stamp_ns(m) for _, _, _, m in iter_messages(reader, [TOPIC])]
    assert stamps == [_stamp(i) for i in range(6)]
    _assert_same_frames(_decoded(BagVideo(bag, TOPIC, cache_dir=tmp_path / 'cache',
                                          size=SIZE)), frames)


def test_a_topic_whose_publishers_disagree_on_its_type_is_one_line(tmp_path):
    bag = _ros2_two_publishers(tmp_path / 'drive', _frames(2), second_type=PACKED)
    with pytest.raises(BagError, match=f'^topic {TOPIC} carries {PACKED} and {IMAGE} over its '
                                       f'2 connections; a topic must keep one message type$'):
        BagVideo(bag, TOPIC, cache_dir=tmp_path / 'cache', size=SIZE)


def _ros2_part(path, frames, first: int):
    with Writer2(path, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        conn = writer.add_connection(TOPIC, IMAGE, typestore=TYPESTORE)
        for i, frame in enumerate(frames, first):
            msg = image_message(frame, _stamp(i), 'cam')
            writer.write(conn, _stamp(i), TYPESTORE.serialize_cdr(msg, IMAGE))
    return path


def test_a_split_drive_is_one_video_in_time_order(tmp_path):
    # Parts named against their time order: the reader merges them by time, not by name.
    from stkd_ros.bag.reader import bag_paths
    frames = _frames(6)
    folder = tmp_path / 'drive'
    folder.mkdir()
    _ros2_part(folder / 'b_first', frames[:3], 0)
    _ros2_part(folder / 'a_second', frames[3:], 3)
    files = tmp_path / 'files'
    files.mkdir()
    for part in ('a_second', 'b_first'):
        shutil.copy(folder / part / f'{part}.mcap', files)
    assert bag_paths(folder) == [folder / 'a_second', folder / 'b_first']
    for source in (folder, files, f'{files}/*.mcap'):
        _assert_same_frames(_decoded(BagVideo(source, TOPIC, cache_dir=tmp_path / 'cache',
                                              size=SIZE)), frames)


def test_a_source_mixing_ros1_and_ros2_is_one_line(tmp_path):
    folder = tmp_path / 'mixed'
    folder.mkdir()
    _ros2_part(folder / 'part', _frames(2), 0)
    _ros1_two_publishers(folder / 'part.bag', _frames(2))
    with pytest.raises(BagError, match='mixes ROS 1 and ROS 2 bags; give one kind per drive$'):
        with open_bag(folder):
            pass
