"""
H.264 video in MP4 through PyAV (FFmpeg's libx264): what every browser plays.

Frames come with their own timestamps (a bag's header stamps), which become their
presentation times: the video plays at the recording's rate, a dropped frame shows as a longer
one, and a moment of the drive is found in the video at the same second. The file is written
under a temporary name and takes its own only when closed whole.
"""

from dataclasses import asdict, dataclass
from fractions import Fraction
import logging
import os
from pathlib import Path
from typing import Optional

import av
import numpy as np

log = logging.getLogger(__name__)

#: x264's constant-quality factor (lower is better and bigger). Masks are flat colour and cost
#: little; camera frames and their sensor noise cost the most.
CRF = 28
#: x264's speed preset: 'veryfast' encodes a frame of eval-bag's layout in a few ms on one
#: core, well below a model's time per frame, at about 10 % more bytes than 'medium'.
PRESET = 'veryfast'
#: Cap on the bitrate per megapixel of video (VBV), which a noisy drive reaches: eval-bag's
#: layout for two models (960x356) gets about 410 kbit/s, some 6 MB for 2 minutes (the
#: README has the measurement). Without it, a noisy synthetic drive measured 2.3 Mbit/s.
MAX_KBPS_PER_MEGAPIXEL = 1200
#: A key frame at least every this many seconds, so that scrubbing lands quickly.
KEYFRAME_SECONDS = 2.0
#: Frame rate assumed for a video of a single frame (there is no interval to read one from).
SINGLE_FRAME_FPS = 30.0
_TIME_BASE = Fraction(1, 90_000)   # MPEG's 90 kHz clock: exact for 25, 30 and 29.97 Hz


@dataclass(frozen=True)
class VideoInfo:
    """What was written: the report page and the tests read it."""

    path: str
    frames: int
    width: int
    height: int
    fps: float          # the rate the stream declares: from the first interval, or given
    duration_s: float   # last presentation time plus one frame at ``fps``
    size_bytes: int

    def to_dict(self) -> dict:
        return asdict(self)


class VideoWriter:
    """
    Write RGB frames to an MP4 file, each at its own time (``add(image, stamp_ns)``).

    The stream opens at the second frame, whose interval from the first gives the declared
    rate (unless ``fps`` is given); times come from the stamps either way. Every frame must
    have the size of the first. Use as a context manager: leaving it by an exception removes
    the partial file, leaving it normally closes the video (:attr:`info`).
    """

    def __init__(self, path, *, fps: Optional[float] = None, crf: int = CRF,
                 preset: str = PRESET):
        self.path = Path(path)
        self._partial = self.path.with_name(f'.{self.path.name}.partial')
        self.fps, self.crf, self.preset = fps, crf, preset
        self.info: Optional[VideoInfo] = None
        self._container = self._stream = None
        self._pending = None          # the first frame, until the rate is known
        self._t0 = self._size = None
        self._last_pts = -1
        self.frames = 0

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.close()
        else:
            self.abort()
        return False

    def add(self, image: np.ndarray, stamp_ns: int):
        """Append an HxWx3 uint8 RGB image shown from ``stamp_ns`` (any origin, increasing)."""
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f'video frames are HxWx3 uint8 RGB, got {image.dtype} {image.shape}')
        if self._size is None:
            self._size, self._t0 = image.shape[:2], int(stamp_ns)
        elif image.shape[:2] != self._size:
            raise ValueError(f'video frame {image.shape[:2]} differs from the first, '
                             f'{self._size}')
        if self._container is None and self._pending is None and self.fps is None:
            self._pending = (image, stamp_ns)
            return
        if self._container is None:
            first_interval = None if self._pending is None else stamp_ns - self._pending[1]
            self._open(self.fps or _rate(first_interval))
            if self._pending is not None:
                self._encode(*self._pending)
                self._pending = None
        self._encode(image, stamp_ns)

    def close(self) -> VideoInfo:
        """Finish the file and move it to its name; returns what was written."""
        if self.info is not None:
            return self.info
        if self._size is None:
            raise ValueError(f'no frame was added to {self.path}')
        if self._container is None:
            self._open(self.fps or SINGLE_FRAME_FPS)
            self._encode(*self._pending)
            self._pending = None
        for packet in self._stream.encode():
            self._container.mux(packet)
        self._container.close()
        os.replace(self._partial, self.path)
        rate = float(self._stream.codec_context.framerate)
        height, width = self._padded(self._size)
        self.info = VideoInfo(str(self.path), self.frames, width, height, rate,
                              self._last_pts * _TIME_BASE + 1 / rate,
                              self.path.stat().st_size)
        log.info('video %s: %d frames, %dx%d, %.1f s, %.2f MB', self.path, self.frames, width,
                 height, self.info.duration_s, self.info.size_bytes / 1e6)
        return self.info

    def abort(self):
        """Drop what was written: a video cut short is not kept."""
        if self._container is not None:
            try:
                self._container.close()
            except (av.FFmpegError, OSError):   # the file is removed anyway
                pass
        self._partial.unlink(missing_ok=True)

    @staticmethod
    def _padded(size):
        return size[0] + size[0] % 2, size[1] + size[1] % 2   # 4:2:0 needs even sides

    def _open(self, fps: float):
        height, width = self._padded(self._size)
        self._partial.parent.mkdir(parents=True, exist_ok=True)
        # faststart: the index goes first, so a browser plays before the whole file is read.
        self._container = av.open(str(self._partial), 'w', format='mp4',
                                  options={'movflags': '+faststart'})
        rate = Fraction(fps).limit_denominator(1001)
        stream = self._container.add_stream('libx264', rate=rate)
        stream.width, stream.height, stream.pix_fmt = width, height, 'yuv420p'
        stream.codec_context.time_base = _TIME_BASE
        kbps = max(100, round(MAX_KBPS_PER_MEGAPIXEL * width * height / 1e6))
        stream.options = {'crf': str(self.crf), 'preset': self.preset,
                          'maxrate': f'{kbps}k', 'bufsize': f'{2 * kbps}k',
                          'g': str(max(1, round(KEYFRAME_SECONDS * fps)))}
        self._stream = stream

    def _encode(self, image: np.ndarray, stamp_ns: int):
        height, width = self._padded(self._size)
        if image.shape[:2] != (height, width):
            image = np.pad(image, ((0, height - image.shape[0]), (0, width - image.shape[1]),
                                   (0, 0)))
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format='rgb24')
        # Stamps that do not increase (a camera's clock stepping back) still give a playable
        # stream: each frame at least one tick after the one before.
        pts = max(round((int(stamp_ns) - self._t0) * 9e-5), self._last_pts + 1)
        frame.pts, frame.time_base = pts, _TIME_BASE
        for packet in self._stream.encode(frame):
            self._container.mux(packet)
        self._last_pts = pts
        self.frames += 1


def _rate(interval_ns) -> float:
    """Frames per second from the first interval; a nonsensical one gives the default."""
    if not interval_ns or interval_ns <= 0:
        return SINGLE_FRAME_FPS
    return min(240.0, max(1.0, 1e9 / interval_ns))
