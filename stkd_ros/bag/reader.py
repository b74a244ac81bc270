"""Read image messages from ROS 2 (MCAP, sqlite3) and ROS 1 bags with `rosbags`."""

from contextlib import contextmanager
from pathlib import Path

from rosbags.highlevel import AnyReader

from stkd_ros.bag.messages import TYPESTORE
from stkd_ros.errors import InputError

IMAGE_TYPES = ('sensor_msgs/msg/Image', 'sensor_msgs/msg/CompressedImage')


class BagError(InputError):
    """A bag that is missing, unreadable, or lacks the asked-for topic."""


@contextmanager
def open_bag(path):
    """Open a bag for reading, as a context manager; a clear error when it cannot."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f'bag not found: {path}')
    reader = AnyReader([path], default_typestore=TYPESTORE)
    try:
        reader.open()
    except Exception as exc:   # rosbags raises its own errors for corrupt files
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise BagError(f'cannot read bag {path}: {reason}') from None
    try:
        yield reader
    finally:
        reader.close()


def image_topics(reader) -> dict:
    """Image topics of an open bag: {topic: msgtype}."""
    return {c.topic: c.msgtype for c in reader.connections if c.msgtype in IMAGE_TYPES}


def connections_for(reader, topics):
    """Return the connections of ``topics``; a missing one is an error listing what exists."""
    available = {c.topic for c in reader.connections}
    missing = [t for t in topics if t not in available]
    if missing:
        raise BagError(f'topic {missing[0]} is not in the bag (it has: '
                       f'{", ".join(sorted(available)) or "no topics"})')
    return [c for c in reader.connections if c.topic in topics]


def iter_messages(reader, topics):
    """Yield (topic, msgtype, bag timestamp ns, deserialized message) in time order."""
    for conn, stamp, raw in reader.messages(connections=connections_for(reader, topics)):
        try:
            msg = reader.deserialize(raw, conn.msgtype)
        except Exception as exc:
            raise BagError(f'corrupt message on {conn.topic} at {stamp}: {exc}') from None
        yield conn.topic, conn.msgtype, stamp, msg
