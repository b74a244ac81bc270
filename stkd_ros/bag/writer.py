"""Write image streams to a ROS 2 bag (MCAP or sqlite3) with `rosbags`."""

from pathlib import Path

from rosbags.rosbag2 import StoragePlugin, Writer
from stkd_ros.bag.messages import IMAGE, image_message, TYPESTORE
from stkd_ros.errors import InputError

_STORAGE = {'mcap': StoragePlugin.MCAP, 'sqlite3': StoragePlugin.SQLITE3}


class ImageBagWriter:
    """Context manager: ``write(topic, array, stamp_ns)`` appends an Image message."""

    def __init__(self, path, topics, *, storage: str = 'mcap', frame_id: str = 'camera'):
        if storage not in _STORAGE:
            raise InputError(f'unknown bag storage {storage!r}; expected one of '
                             f'{sorted(_STORAGE)}')
        path = Path(path)
        if path.exists():
            raise FileExistsError(f'bag {path} already exists; choose a new path')
        self.path, self.topics, self.frame_id = path, list(topics), frame_id
        self._writer = Writer(path, version=9, storage_plugin=_STORAGE[storage])
        self._connections = {}

    def __enter__(self):
        self._writer.open()
        for topic in self.topics:
            self._connections[topic] = self._writer.add_connection(topic, IMAGE,
                                                                   typestore=TYPESTORE)
        return self

    def write(self, topic: str, array, stamp_ns: int):
        msg = image_message(array, stamp_ns, self.frame_id)
        data = TYPESTORE.serialize_cdr(msg, IMAGE)
        self._writer.write(self._connections[topic], stamp_ns, data)

    def __exit__(self, *exc):
        self._writer.close()
        return False
