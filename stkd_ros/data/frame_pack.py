"""
Video frames kept as JPEG files one after another in one file, read back one frame at a time.

A pack ``NAME.jpgs`` holds frame t as bytes ``offsets[t]:offsets[t + 1]``, a whole JPEG
file (cut out, any viewer opens it); ``NAME.jpgs.index.npy`` holds the N + 1 offsets
(int64). Writing streams one frame at a time and the index is read as a memory map, so
neither side holds more than a frame, however long the video.

JPEG at quality 95, measured on 30 generated 1080p frames (`stkd synth --bag --size
1080x1920`, difficulty 0.6) resized to 128x256: 15.1 kB a frame, index included (PNG took
54 kB, raw is 98 kB); at 512x1024: 147 kB (PNG 632 kB, raw 1.57 MB); 1-2 grey levels of mean
error. The same frames take 6.22 MB a frame as the bag's raw rgb8 messages and 287 kB as a
recorder's 1080p JPEG (quality 95): PNG at 512x1024 would outweigh the camera's own JPEG.

Both files are written under temporary names beside the pack and renamed, the pack first and
the index last: an index whose last offset is the pack's size marks a complete pack, anything
else is written again.
"""

from contextlib import ExitStack
import os
from pathlib import Path
from typing import Iterable

import cv2
import numpy as np
from stkd_ros.atomic_write import remove_stale_temporaries, temporary_beside
from stkd_ros.errors import InputError
from stkd_ros.image_msgs import compressed_to_rgb

JPEG_QUALITY = 95


def index_path(pack) -> Path:
    """Return where the offsets of ``pack``'s frames go: ``NAME.jpgs.index.npy``."""
    pack = Path(pack)
    return pack.with_name(pack.name + '.index.npy')


def is_complete(pack) -> bool:
    """Whether ``pack`` and its index were both written to the end (not torn, not partial)."""
    index = index_path(pack)
    if not (Path(pack).is_file() and index.is_file()):
        return False
    try:
        offsets = np.load(index, mmap_mode='r')
    except (ValueError, OSError):
        return False
    return offsets.ndim == 1 and len(offsets) >= 1 and int(offsets[-1]) == os.path.getsize(pack)


def encode(frame: np.ndarray) -> bytes:
    """HxWx3 uint8 RGB -> the bytes of a JPEG file."""
    ok, buf = cv2.imencode('.jpg', cv2.cvtColor(frame, cv2.COLOR_RGB2BGR),
                           [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise RuntimeError(f'JPEG encoding failed for a {frame.shape} frame')
    return buf.tobytes()


def write_pack(pack, frames: Iterable[np.ndarray], count: int, source: str) -> Path:
    """
    Write the ``count`` RGB ``frames`` (an iterator, consumed once) into ``pack``.

    ``source`` names where the frames come from, for the error when there are more or
    fewer than ``count``. Temporary files a killed writer of this host left are removed first.
    """
    pack = Path(pack)
    index = index_path(pack)
    pack.parent.mkdir(parents=True, exist_ok=True)
    for path in (pack, index):
        remove_stale_temporaries(path)
    tmp_pack, tmp_index = temporary_beside(pack), temporary_beside(index)
    written = 0
    with ExitStack() as cleanup:
        cleanup.callback(lambda: [p.unlink() for p in (tmp_pack, tmp_index) if p.exists()])
        offsets = np.lib.format.open_memmap(tmp_index, 'w+', np.int64, (count + 1,))
        with open(tmp_pack, 'wb') as out:
            for frame in frames:
                if written == count:
                    raise InputError(f'{source}: more frames than the {count} its index counts')
                out.write(encode(frame))
                written += 1
                offsets[written] = out.tell()
        if written != count:
            raise InputError(f'{source}: {written} frames read, its index counts {count}')
        offsets.flush()
        del offsets
        os.replace(tmp_pack, pack)
        os.replace(tmp_index, index)
    return pack


class PackReader:
    """``frame(t)``: frame t of a complete pack as HxWx3 uint8 RGB; ``len()`` frames."""

    def __init__(self, pack):
        self.pack = Path(pack)
        self.count = len(np.load(index_path(self.pack), mmap_mode='r')) - 1
        self._offsets = self._file = None   # opened on first read, in each process

    def __len__(self):
        return self.count

    def frame(self, t: int) -> np.ndarray:
        if not 0 <= t < self.count:
            raise IndexError(f'frame {t} of {self.pack} ({self.count} frames)')
        if self._file is None:
            self._offsets = np.load(index_path(self.pack), mmap_mode='r')
            self._file = open(self.pack, 'rb')
        start, end = int(self._offsets[t]), int(self._offsets[t + 1])
        return compressed_to_rgb('jpeg', os.pread(self._file.fileno(), end - start, start))

    def __getstate__(self):
        return {**self.__dict__, '_offsets': None, '_file': None}
