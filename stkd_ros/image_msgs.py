"""
sensor_msgs/Image and CompressedImage <-> numpy, with the checks a camera stream needs.

The conversion works on the message's fields, so it needs no ROS. cv_bridge is used when it
is installed; this module's own conversion is used when it is not. Every rejection raises
:class:`ImageError` with a one-line reason, so the node can count and skip the message.
"""

import cv2
import numpy as np
from stkd_ros.errors import InputError

#: encoding -> (channels, numpy dtype, conversion to RGB or None)
ENCODINGS = {
    'rgb8': (3, np.uint8, None),
    'bgr8': (3, np.uint8, cv2.COLOR_BGR2RGB),
    'rgba8': (4, np.uint8, cv2.COLOR_RGBA2RGB),
    'bgra8': (4, np.uint8, cv2.COLOR_BGRA2RGB),
    'mono8': (1, np.uint8, cv2.COLOR_GRAY2RGB),
    'mono16': (1, np.uint16, cv2.COLOR_GRAY2RGB),
}

#: Larger than any camera we expect (16k x 16k); beyond is a corrupt header, not an image.
MAX_SIDE = 16384


class ImageError(InputError):
    """A message that cannot be turned into an image."""


def _checked_buffer(height: int, width: int, encoding: str, step: int, data):
    """Check the fields of a sensor_msgs/Image (no copy); its bytes and pixel layout."""
    if encoding not in ENCODINGS:
        raise ImageError(f'unsupported encoding {encoding!r} (supported: '
                         f'{", ".join(ENCODINGS)})')
    if height <= 0 or width <= 0:
        raise ImageError(f'empty image {width}x{height}')
    if height > MAX_SIDE or width > MAX_SIDE:
        raise ImageError(f'absurd image size {width}x{height} (limit {MAX_SIDE} per side)')
    channels, dtype, _ = ENCODINGS[encoding]
    row = width * channels * np.dtype(dtype).itemsize
    if step < row:
        raise ImageError(f'step {step} is shorter than a row of {width} {encoding} pixels '
                         f'({row} bytes)')
    buf = np.frombuffer(data, dtype=np.uint8) if not isinstance(data, np.ndarray) \
        else data.view(np.uint8).reshape(-1)
    if buf.size != step * height:
        raise ImageError(f'data has {buf.size} bytes; step {step} x height {height} needs '
                         f'{step * height}')
    return buf, channels, dtype, row


def _pixels(height: int, width: int, encoding: str, step: int, data,
            is_bigendian: int = 0) -> np.ndarray:
    """Check the fields of a sensor_msgs/Image; its pixels as HxW or HxWxC uint8."""
    buf, channels, dtype, row = _checked_buffer(height, width, encoding, step, data)
    rows = buf.reshape(height, step)[:, :row]
    img = np.ascontiguousarray(rows).view(dtype)
    if dtype == np.uint16:
        if bool(is_bigendian) == np.little_endian:   # bytes in the other order than ours
            img = img.byteswap()
        img = (img >> 8).astype(np.uint8)   # keep the most significant byte
    return img.reshape(height, width, channels) if channels > 1 else img.reshape(height, width)


def image_to_rgb(height: int, width: int, encoding: str, step: int, data,
                 is_bigendian: int = 0) -> np.ndarray:
    """Decode the fields of a sensor_msgs/Image into an HxWx3 uint8 RGB array."""
    img = _pixels(height, width, encoding, step, data, is_bigendian)
    code = ENCODINGS[encoding][2]
    return img if code is None else cv2.cvtColor(img, code)


def mask_to_array(msg) -> np.ndarray:
    """Decode a mono8 Image message (class ids: a mask or labels) into a writable HxW array."""
    if msg.encoding != 'mono8':
        raise ImageError(f'mask encoding {msg.encoding!r} is not mono8')
    return np.array(_pixels(int(msg.height), int(msg.width), msg.encoding, int(msg.step),
                            msg.data))


def stamp_ns(msg) -> int:
    """Return the header stamp of a message (rclpy or rosbags) in nanoseconds."""
    return int(msg.header.stamp.sec) * 1_000_000_000 + int(msg.header.stamp.nanosec)


def compressed_to_rgb(fmt: str, data) -> np.ndarray:
    """Decode a sensor_msgs/CompressedImage (JPEG or PNG) into HxWx3 uint8 RGB."""
    buf = np.frombuffer(bytes(data) if not isinstance(data, np.ndarray) else data, np.uint8)
    if buf.size == 0:
        raise ImageError('empty compressed image')
    img = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    if img is None:
        raise ImageError(f'cannot decode compressed image (format {fmt!r}, {buf.size} bytes)')
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def message_to_rgb(msg) -> np.ndarray:
    """Decode an Image or CompressedImage message; cv_bridge when installed."""
    if hasattr(msg, 'format'):   # CompressedImage
        return compressed_to_rgb(msg.format, msg.data)
    bridge = _bridge()
    if bridge is not None and msg.encoding in ENCODINGS:
        # Our checks first (no decoding): cv_bridge raises less helpful errors.
        _checked_buffer(msg.height, msg.width, msg.encoding, msg.step, msg.data)
        return bridge.imgmsg_to_cv2(msg, desired_encoding='rgb8')
    return image_to_rgb(msg.height, msg.width, msg.encoding, msg.step, msg.data,
                        msg.is_bigendian)


def fill_image(msg, array: np.ndarray, encoding: str, header):
    """Fill a sensor_msgs/Image from a uint8 HxW (mono8) or HxWx3 (rgb8) array."""
    channels = 1 if array.ndim == 2 else array.shape[2]
    msg.header = header
    msg.height, msg.width = array.shape[:2]
    msg.encoding, msg.is_bigendian = encoding, 0
    msg.step = msg.width * channels
    msg.data = np.ascontiguousarray(array).tobytes()
    return msg


_BRIDGE = []


def _bridge():
    if not _BRIDGE:
        try:
            from cv_bridge import CvBridge
            _BRIDGE.append(CvBridge())
        except ImportError:
            _BRIDGE.append(None)
    return _BRIDGE[0]
