"""Reading and writing frames, label maps and flow files, with errors that name the file."""

from pathlib import Path

import cv2
import numpy as np
from stkd_ros.errors import InputError

_FLO_MAGIC = 202021.25  # Middlebury .flo header


def read_rgb(path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise FileNotFoundError(f'cannot read image {path} (missing or not an image)')
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def read_label(path) -> np.ndarray:
    """Read a single-channel label PNG as uint8 (a colour PNG is an error, not a guess)."""
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise FileNotFoundError(f'cannot read label map {path} (missing or not an image)')
    if img.ndim != 2:
        raise InputError(f'label map {path} has {img.shape[2]} channels; expected one channel '
                         f'of class ids')
    return img.astype(np.uint8)


def write_rgb(path, img: np.ndarray):
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), cv2.cvtColor(img, cv2.COLOR_RGB2BGR)):
        raise OSError(f'cannot write image {path}')


def write_label(path, label: np.ndarray):
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), label.astype(np.uint8)):
        raise OSError(f'cannot write label map {path}')


def write_flo(path, flow: np.ndarray):
    """Write HxWx2 flow in the Middlebury ``.flo`` format (little-endian float32)."""
    h, w = flow.shape[:2]
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, 'wb') as f:
        np.array([_FLO_MAGIC], '<f4').tofile(f)
        np.array([w, h], '<i4').tofile(f)
        flow.astype('<f4').tofile(f)


def read_flo(path) -> np.ndarray:
    with open(path, 'rb') as f:
        magic = np.fromfile(f, '<f4', 1)
        if magic.size != 1 or magic[0] != _FLO_MAGIC:
            raise InputError(f'{path} is not a .flo flow file')
        w, h = np.fromfile(f, '<i4', 2)
        data = np.fromfile(f, '<f4', int(w) * int(h) * 2)
    if data.size != int(w) * int(h) * 2:
        raise InputError(f'{path} is truncated: expected {w}x{h}x2 values')
    return data.reshape(int(h), int(w), 2)
