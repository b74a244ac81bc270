"""Build and decode sensor_msgs/Image and CompressedImage with the `rosbags` type store."""

import cv2
import numpy as np
from rosbags.typesys import get_typestore, Stores
from stkd_ros.errors import InputError
from stkd_ros.image_msgs import compressed_to_rgb, image_to_rgb

TYPESTORE = get_typestore(Stores.ROS2_KILTED)
IMAGE = 'sensor_msgs/msg/Image'
COMPRESSED_IMAGE = 'sensor_msgs/msg/CompressedImage'


def image_message(array: np.ndarray, stamp_ns: int, frame_id: str):
    """Wrap an rgb8 (HxWx3) or mono8 (HxW) uint8 array in a rosbags Image message."""
    types = TYPESTORE.types
    if array.dtype != np.uint8 or array.ndim not in (2, 3):
        raise InputError(f'image_message expects uint8 HxW or HxWx3, got {array.dtype} '
                         f'{array.shape}')
    channels = 1 if array.ndim == 2 else array.shape[2]
    encoding = {1: 'mono8', 3: 'rgb8'}.get(channels)
    if encoding is None:
        raise InputError(f'image_message supports 1 or 3 channels, got {channels}')
    h, w = array.shape[:2]
    return types[IMAGE](header=_header(stamp_ns, frame_id), height=h, width=w, encoding=encoding,
                        is_bigendian=0,
                        step=w * channels, data=np.ascontiguousarray(array).reshape(-1))


def _header(stamp_ns: int, frame_id: str):
    types = TYPESTORE.types
    return types['std_msgs/msg/Header'](
        stamp=types['builtin_interfaces/msg/Time'](sec=stamp_ns // 1_000_000_000,
                                                   nanosec=stamp_ns % 1_000_000_000),
        frame_id=frame_id)


def jpeg_message(array: np.ndarray, stamp_ns: int, frame_id: str, quality: int = 95):
    """Encode an rgb8 HxWx3 array as a JPEG CompressedImage, as image_transport's plugin does."""
    if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] != 3:
        raise InputError(f'jpeg_message expects uint8 HxWx3 RGB, got {array.dtype} '
                         f'{array.shape}')
    ok, data = cv2.imencode('.jpg', np.ascontiguousarray(array[..., ::-1]),
                            [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise InputError(f'JPEG encoding failed for a {array.shape} frame')
    return TYPESTORE.types[COMPRESSED_IMAGE](header=_header(stamp_ns, frame_id),
                                             format='rgb8; jpeg compressed bgr8',
                                             data=data.reshape(-1))


def decode(msgtype: str, msg) -> np.ndarray:
    """Decode a rosbags Image or CompressedImage message into HxWx3 uint8 RGB."""
    if msgtype.endswith('CompressedImage'):
        return compressed_to_rgb(msg.format, msg.data)
    return image_to_rgb(int(msg.height), int(msg.width), msg.encoding, int(msg.step),
                        np.asarray(msg.data), int(msg.is_bigendian))
