"""Write image streams to a ROS 2 bag (MCAP or sqlite3) with `rosbags`."""

from pathlib import Path

from rosbags.rosbag2 import StoragePlugin, Writer
from stkd_ros.bag.messages import COMPRESSED_IMAGE, IMAGE, image_message, jpeg_message, TYPESTORE
from stkd_ros.errors import InputError

_STORAGE = {'mcap': StoragePlugin.MCAP, 'sqlite3': StoragePlugin.SQLITE3}


class ImageBagWriter:
    """
    Context manager: ``write(topic, array, stamp_ns)`` appends an Image message.

    Topics in ``jpeg_topics`` get a CompressedImage (JPEG at ``jpeg_quality``) instead, as a
    recorder of image_transport's compressed stream stores them.
    """

    def __init__(self, path, topics, *, storage: str = 'mcap', frame_id: str = 'camera',
                 jpeg_topics=(), jpeg_quality: int = 95):
        if storage not in _STORAGE:
            raise InputError(f'unknown bag storage {storage!r}; expected one of '
                             f'{sorted(_STORAGE)}')
        path = Path(path)
        if path.exists():
            raise FileExistsError(f'bag {path} already exists; choose a new path')
        self.path, self.topics, self.frame_id = path, list(topics), frame_id
        self.jpeg_topics, self.jpeg_quality = set(jpeg_topics), jpeg_quality
        unknown = self.jpeg_topics - set(self.topics)
        if unknown:
            raise InputError(f'jpeg_topics {sorted(unknown)} are not among the topics')
        self._writer = Writer(path, version=9, storage_plugin=_STORAGE[storage])
        self._connections = {}

    def __enter__(self):
        self._writer.open()
        for topic in self.topics:
            self._connections[topic] = self._writer.add_connection(
                topic, self._type(topic), typestore=TYPESTORE)
        return self

    def _type(self, topic: str) -> str:
        return COMPRESSED_IMAGE if topic in self.jpeg_topics else IMAGE

    def write(self, topic: str, array, stamp_ns: int):
        if topic in self.jpeg_topics:
            msg = jpeg_message(array, stamp_ns, self.frame_id, self.jpeg_quality)
        else:
            msg = image_message(array, stamp_ns, self.frame_id)
        data = TYPESTORE.serialize_cdr(msg, self._type(topic))
        self._writer.write(self._connections[topic], stamp_ns, data)

    def __exit__(self, *exc):
        self._writer.close()
        return False
