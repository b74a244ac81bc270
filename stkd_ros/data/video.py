"""Shared machinery of real datasets: a labeled key frame plus the video frames after it."""

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, List

import numpy as np
from stkd_ros.data.classes import IGNORE_INDEX
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
    """

    def __init__(self, sequences: List[List[Path]], *, gap=1, clip_length: int = 2,
                 name: str = ''):
        self.gap, self.clip_length, self.name = FrameGap(gap), clip_length, name
        reach = (clip_length - 1) * self.gap.high
        self.sequences = [s for s in sequences if len(s) > reach]
        self.starts = [(i, t) for i, s in enumerate(self.sequences) for t in range(len(s) - reach)]
        if not self.starts:
            raise FileNotFoundError(f'{name}: no run of video frames holds a clip of '
                                    f'{clip_length} frames {self.gap.high} apart')

    def __len__(self):
        return len(self.starts)

    def __getitem__(self, index: int) -> Clip:
        seq, start = self.starts[index]
        gap = self.gap.sample()
        paths = self.sequences[seq][start:start + (self.clip_length - 1) * gap + 1:gap]
        frames = np.stack([read_rgb(p) for p in paths])
        labels = np.full(frames.shape[:3], IGNORE_INDEX, np.uint8)
        return Clip(frames, labels, None, name=paths[0].stem, gap=gap)


def consecutive_runs(paths: List[Path], frame_number: Callable[[Path], int]) -> List[List[Path]]:
    """Split frame files of one video into runs whose frame numbers follow each other."""
    runs = []
    for path in sorted(paths, key=frame_number):
        if runs and frame_number(path) == frame_number(runs[-1][-1]) + 1:
            runs[-1].append(path)
        else:
            runs.append([path])
    return runs
