"""
`eval-bag --write-bag`: a copy of the drive with each model's mask and colour topics added.

Written during eval-bag's one pass: every message read is copied as it comes, and each
frame's masks (the very masks the pass scored) follow it at the same bag time.
"""

from pathlib import Path

from rosbags.rosbag2 import StoragePlugin, Writer

from stkd_ros.bag.messages import IMAGE, image_message, TYPESTORE
from stkd_ros.bag.reader import BagError


def output_topics(name: str) -> tuple:
    base = '/stkd/' + name.replace('/', '_').replace('-', '_').replace('.', '_')
    return f'{base}/mask', f'{base}/color'


class AnnotatedBag:
    """
    An MCAP bag at ``out`` holding the messages of ``reader`` and the masks of ``names``.

    A context manager around an open reader; :meth:`copy` takes each message of the bag,
    :meth:`add_masks` each frame's (mask, colour) pair per model.
    """

    def __init__(self, out, reader, names):
        out = Path(out)
        if out.exists():
            raise FileExistsError(f'bag {out} already exists; choose a new path')
        if any(not hasattr(c.ext, 'serialization_format') for c in reader.connections):
            raise BagError('--write-bag copies ROS 2 bags only; this is a ROS 1 bag')
        self.path, self.reader, self.names = out, reader, list(names)
        self._writer = Writer(out, version=9, storage_plugin=StoragePlugin.MCAP)

    def __enter__(self):
        self._writer.open()
        # Parts of a split drive repeat their connections: one output connection for each
        # distinct (topic, type, serialization, QoS), which the writer insists on.
        outputs, self._copies = {}, {}
        for c in self.reader.connections:
            key = (c.topic, c.msgtype, c.ext.serialization_format,
                   repr(c.ext.offered_qos_profiles))
            if key not in outputs:
                outputs[key] = self._writer.add_connection(
                    c.topic, c.msgtype, msgdef=c.msgdef.data or None, rihs01=c.digest or None,
                    typestore=self.reader.typestore,
                    serialization_format=c.ext.serialization_format,
                    offered_qos_profiles=c.ext.offered_qos_profiles)
            self._copies[id(c.owner), c.id] = outputs[key]
        self._added = [[self._writer.add_connection(topic, IMAGE, typestore=TYPESTORE)
                        for topic in output_topics(name)] for name in self.names]
        return self

    def copy(self, conn, stamp: int, raw):
        """Copy one message of the bag being read."""
        self._writer.write(self._copies[id(conn.owner), conn.id], stamp, raw)

    def add_masks(self, stamp: int, header_ns: int, frame_id: str, pairs):
        """Write each model's (mask, colour) of a frame, at the frame's bag time ``stamp``."""
        for connections, arrays in zip(self._added, pairs):
            for conn, array in zip(connections, arrays):
                msg = image_message(array, header_ns, frame_id)
                self._writer.write(conn, stamp, TYPESTORE.serialize_cdr(msg, IMAGE))

    def __exit__(self, *exc):
        self._writer.close()
        return False
