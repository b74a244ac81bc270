"""
Read image messages from ROS 2 (MCAP, sqlite3) and ROS 1 bags with `rosbags`.

A source (what ``--bag`` names) is one drive: a bag, a folder of bags or of MCAP/sqlite3
files (a split recording), or a glob of them; its parts are read as one stream in time order
(rosbags' ``AnyReader`` merges them by receive time). A topic may come over several
connections (two publishers, a recording split and merged): all of them are read.
"""

from contextlib import contextmanager
import glob
from pathlib import Path

from rosbags.highlevel import AnyReader

from stkd_ros.bag.messages import TYPESTORE
from stkd_ros.errors import InputError

IMAGE_TYPES = ('sensor_msgs/msg/Image', 'sensor_msgs/msg/CompressedImage')
#: Files that are a bag by themselves: ROS 1, and ROS 2 storage files rosbags reads bare.
BAG_FILES = ('.bag', '.mcap', '.db3')


class BagError(InputError):
    """A bag that is missing, unreadable, or lacks the asked-for topic."""


def _is_bag(path: Path) -> bool:
    if path.is_dir():
        return (path / 'metadata.yaml').is_file()
    return path.suffix in BAG_FILES


def _bags_in(folder: Path) -> list:
    """Bags directly in ``folder``: ROS 2 bag folders and bag files, by name."""
    return sorted(p for p in folder.iterdir() if _is_bag(p))


def bag_paths(source) -> list:
    """
    Return the bags ``source`` names, in name order (a one-line error when it names none).

    ``source``: a bag (a ROS 2 bag folder, a ``.bag``, ``.mcap`` or ``.db3`` file), a folder
    of them, or a glob pattern that matches them.
    """
    text = str(source)
    path = Path(text)
    if not path.exists() and glob.has_magic(text):
        bags = [Path(p) for p in sorted(glob.glob(text)) if _is_bag(Path(p))]
        if not bags:
            raise BagError(f'no bag matches {text} (a bag is a ROS 2 bag folder or a '
                           f'{", ".join(BAG_FILES)} file)')
        return bags
    if not path.exists():
        raise FileNotFoundError(f'bag not found: {path}')
    if _is_bag(path) or path.is_file():
        return [path]
    bags = _bags_in(path)
    if not bags:
        raise BagError(f'folder {path} holds no bag (a ROS 2 bag folder with metadata.yaml, '
                       f'or {", ".join(BAG_FILES)} files)')
    return bags


@contextmanager
def open_bag(source):
    """Open a bag, or the bags of one split drive, for reading; a clear error when it cannot."""
    paths = bag_paths(source)
    if len({p.suffix == '.bag' for p in paths}) > 1:
        raise BagError(f'{source} mixes ROS 1 and ROS 2 bags; give one kind per drive')
    try:
        reader = AnyReader(paths, default_typestore=TYPESTORE)
        reader.open()
    except Exception as exc:   # rosbags raises its own errors for corrupt files
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise BagError(f'cannot read bag {source}: {reason}') from None
    try:
        yield reader
    finally:
        reader.close()


def image_topics(reader) -> dict:
    """Image topics of an open bag: {topic: msgtype}."""
    return {c.topic: c.msgtype for c in reader.connections if c.msgtype in IMAGE_TYPES}


def connections_for(reader, topics):
    """
    Return every connection of ``topics``.

    A missing topic is an error listing what exists, and so is a topic whose connections
    carry different message types.
    """
    available = {c.topic for c in reader.connections}
    missing = [t for t in topics if t not in available]
    if missing:
        raise BagError(f'topic {missing[0]} is not in the bag (it has: '
                       f'{", ".join(sorted(available)) or "no topics"})')
    chosen = [c for c in reader.connections if c.topic in topics]
    for topic in topics:
        types = sorted({c.msgtype for c in chosen if c.topic == topic})
        if len(types) > 1:
            raise BagError(f'topic {topic} carries {" and ".join(types)} over its '
                           f'{sum(c.topic == topic for c in chosen)} connections; a topic '
                           f'must keep one message type')
    return chosen


def topic_type(reader, topic: str) -> str:
    """Return the message type of ``topic``, however many connections carry it."""
    return connections_for(reader, [topic])[0].msgtype


def iter_messages(reader, topics, copy=None):
    """
    Yield (topic, msgtype, bag timestamp ns, deserialized message) of ``topics`` in time order.

    ``copy(connection, timestamp, raw)``, when given, receives every message of the bag, of
    any topic, in that order (what a copy of the bag written in the same pass needs).
    """
    chosen = connections_for(reader, topics)
    wanted = {(id(c.owner), c.id) for c in chosen}
    for conn, stamp, raw in reader.messages(connections=() if copy else chosen):
        if copy is not None:
            copy(conn, stamp, raw)
            if (id(conn.owner), conn.id) not in wanted:
                continue
        try:
            msg = reader.deserialize(raw, conn.msgtype)
        except Exception as exc:
            raise BagError(f'corrupt message on {conn.topic} at {stamp}: {exc}') from None
        yield conn.topic, conn.msgtype, stamp, msg
