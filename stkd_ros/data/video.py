"""Shared machinery of real datasets: a labeled key frame plus the video frames after it."""

from dataclasses import dataclass
from pathlib import Path
import struct
from typing import Callable, List, Optional

import numpy as np
from stkd_ros.data.classes import IGNORE_INDEX, resize_classes
from stkd_ros.data.clip import Clip, FrameGap
from stkd_ros.data.image_io import read_rgb
from stkd_ros.errors import InputError


@dataclass
class KeyFrame:
    """A labeled frame and a way to find the frame ``offset`` frames later in its video."""

    image: Path
    label: Path
    neighbour: Callable[[int], Path]


def require_dir(path: Path, what: str) -> Path:
    """Stop with an error naming the expected directory when it is missing."""
    if not path.is_dir():
        raise FileNotFoundError(f'{what}: expected directory {path} does not exist')
    return path


class LabeledVideoDataset:
    """
    Clips of ``clip_length`` frames ``gap`` apart, starting at each labeled key frame.

    Subclasses fill ``self.keys`` and implement ``load_label``. ``clip_length=1`` gives single
    labeled frames, for datasets whose video frames the user does not have.
    """

    classes: tuple = ()
    palette: np.ndarray = None

    def __init__(self, keys: List[KeyFrame], *, gap=1, clip_length: int = 2, name: str = ''):
        if not keys:
            raise FileNotFoundError(f'{name}: no labeled frames found')
        if clip_length < 1:
            raise InputError(f'clip_length must be >= 1, got {clip_length}')
        self.keys, self.gap, self.clip_length, self.name = keys, FrameGap(gap), clip_length, name

    def load_label(self, path: Path) -> np.ndarray:
        raise NotImplementedError

    def __len__(self):
        return len(self.keys)

    def __getitem__(self, index: int) -> Clip:
        key = self.keys[index]
        gap = self.gap.sample()
        frames = [read_rgb(key.image)]
        for i in range(1, self.clip_length):
            path = key.neighbour(i * gap)
            if not path.is_file():
                raise FileNotFoundError(
                    f'{self.name}: video frame {path} ({i * gap} after {key.image.name}) is '
                    f'missing; provide the sequence frames or set clip_length: 1')
            frames.append(read_rgb(path))
        label = self.load_label(key.label)
        if label.shape != frames[0].shape[:2]:
            raise InputError(f'{key.label}: label size {label.shape} differs from image size '
                             f'{frames[0].shape[:2]}')
        labels = np.full((len(frames),) + label.shape, IGNORE_INDEX, np.uint8)
        labels[0] = label
        return Clip(np.stack(frames), labels, None, name=key.image.stem, gap=gap)


class UnlabeledVideo:
    """
    Clips of ``clip_length`` frames ``gap`` apart from runs of consecutive video frames.

    ``sequences`` are lists of frame files in time order; a clip starts at every frame that
    leaves room for the largest gap. Labels are 255 everywhere: these frames teach through
    the teacher and the video's own consistency.

    Each run is a sequence named by ``sequence_name(run)`` (default: its first frame's file
    stem); ``truth(path)`` gives a frame's annotation where the dataset has one (else None),
    for scoring labels made from the video (``stkd label``), never for training.
    """

    def __init__(self, sequences: List[List[Path]], *, gap=1, clip_length: int = 2,
                 name: str = '', sequence_name: Callable[[List[Path]], str] = None,
                 truth: Callable[[Path], Optional[np.ndarray]] = None):
        self.gap, self.clip_length, self.name = FrameGap(gap), clip_length, name
        reach = (clip_length - 1) * self.gap.high
        self.sequences = [s for s in sequences if len(s) > reach]
        self.starts = [(i, t) for i, s in enumerate(self.sequences) for t in range(len(s) - reach)]
        if not self.starts:
            raise FileNotFoundError(f'{name}: no run of video frames holds a clip of '
                                    f'{clip_length} frames {self.gap.high} apart')
        self.names = [(sequence_name or _first_stem)(s) for s in self.sequences]
        self._index = {n: i for i, n in enumerate(self.names)}
        self._truth = truth

    def __len__(self):
        return len(self.starts)

    def __getitem__(self, index: int) -> Clip:
        seq, start = self.starts[index]
        gap = self.gap.sample()
        paths = self.sequences[seq][start:start + (self.clip_length - 1) * gap + 1:gap]
        frames = np.stack([read_rgb(p) for p in paths])
        labels = np.full(frames.shape[:3], IGNORE_INDEX, np.uint8)
        times = tuple(start + i * gap for i in range(len(paths)))
        return Clip(frames, labels, None, name=paths[0].stem, gap=gap,
                    sequence=self.names[seq], times=times)

    def list_sequences(self) -> list:
        """Every run as (sequence name, frame count), in order."""
        return [(n, len(s)) for n, s in zip(self.names, self.sequences)]

    def sequence_size(self, sequence: str) -> tuple:
        """Frame size (height, width) of a sequence, from its first frame's header."""
        return image_size(self._run(sequence)[0])

    def sequence_frame(self, sequence: str, t: int):
        """Frame ``t`` of a sequence and its annotation where one exists: (RGB, labels or None)."""
        run = self._run(sequence)
        if not 0 <= t < len(run):
            raise IndexError(f'{self.name}: sequence {sequence} has no frame {t} (it has '
                             f'{len(run)})')
        return read_rgb(run[t]), self.sequence_truth(sequence, t)

    def sequence_truth(self, sequence: str, t: int) -> Optional[np.ndarray]:
        """Return the annotation of frame ``t`` of a sequence at the frame's size, or None."""
        path = self._run(sequence)[t]
        truth = self._truth(path) if self._truth is not None else None
        if truth is not None and truth.shape != image_size(path):
            # Annotations at another size than the video (CamVid's SegNet files are 480x360,
            # its video 960x720): resized by nearest neighbour, so ids are never mixed.
            truth = resize_classes(truth, image_size(path))
        return truth

    def _run(self, sequence: str) -> List[Path]:
        if sequence not in self._index:
            raise InputError(f'{self.name}: no sequence named {sequence!r}')
        return self.sequences[self._index[sequence]]


def _first_stem(run: List[Path]) -> str:
    return run[0].stem


def image_size(path: Path) -> tuple:
    """(height, width) of an image file: a PNG's from its header alone, others decoded."""
    with open(path, 'rb') as f:
        head = f.read(24)
    if head[:8] == b'\x89PNG\r\n\x1a\n' and head[12:16] == b'IHDR':
        width, height = struct.unpack('>II', head[16:24])
        return int(height), int(width)
    return read_rgb(path).shape[:2]


def consecutive_runs(paths: List[Path], frame_number: Callable[[Path], int]) -> List[List[Path]]:
    """Split frame files of one video into runs whose frame numbers follow each other."""
    runs = []
    for path in sorted(paths, key=frame_number):
        if runs and frame_number(path) == frame_number(runs[-1][-1]) + 1:
            runs[-1].append(path)
        else:
            runs.append([path])
    return runs
