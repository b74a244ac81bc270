"""The bag writer: raw Image and JPEG CompressedImage topics read back by the package's reader."""

import numpy as np
import pytest

from stkd_ros.bag.messages import decode
from stkd_ros.bag.reader import iter_messages, open_bag
from stkd_ros.bag.writer import ImageBagWriter
from stkd_ros.errors import InputError


def _frames(count: int):
    """Smooth frames (JPEG keeps them close) and label maps."""
    y, x = np.mgrid[0:48, 0:64]
    frames = [np.stack([(x * 4 + 10 * i) % 256, y * 5, (x + y + 20 * i) % 256], -1)
              .astype(np.uint8) for i in range(count)]
    labels = [((x // 16 + y // 16 + i) % 11).astype(np.uint8) for i in range(count)]
    return frames, labels


def test_jpeg_topics_hold_compressed_frames_and_the_others_raw_ones(tmp_path):
    frames, labels = _frames(3)
    with ImageBagWriter(tmp_path / 'bag', ['/cam/image/compressed', '/cam/labels'],
                        jpeg_topics=['/cam/image/compressed']) as writer:
        for i, (frame, label) in enumerate(zip(frames, labels)):
            writer.write('/cam/image/compressed', frame, (i + 1) * 10**8)
            writer.write('/cam/labels', label, (i + 1) * 10**8)
    got = {'/cam/image/compressed': [], '/cam/labels': []}
    with open_bag(tmp_path / 'bag') as reader:
        for topic, msgtype, stamp, msg in iter_messages(reader, list(got)):
            got[topic].append((msgtype, stamp, msg))
    assert [m[0] for m in got['/cam/image/compressed']] == ['sensor_msgs/msg/CompressedImage'] * 3
    assert [m[1] for m in got['/cam/labels']] == [10**8, 2 * 10**8, 3 * 10**8]
    for (msgtype, _, msg), frame in zip(got['/cam/image/compressed'], frames):
        assert msg.format.endswith('jpeg compressed bgr8')
        assert np.abs(decode(msgtype, msg).astype(int) - frame).mean() < 3
    for (msgtype, _, msg), label in zip(got['/cam/labels'], labels):
        assert msgtype == 'sensor_msgs/msg/Image' and msg.encoding == 'mono8'
        assert np.array_equal(np.asarray(msg.data).reshape(label.shape), label)


def test_a_jpeg_topic_must_be_one_of_the_topics(tmp_path):
    with pytest.raises(InputError, match=r"jpeg_topics \['/other'\] are not among the topics"):
        ImageBagWriter(tmp_path / 'bag', ['/cam/image'], jpeg_topics=['/other'])
