"""Shared machinery of real datasets: a labeled key frame plus the video frames after it."""

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, List

import numpy as np
from stkd_ros.data.classes import IGNORE_INDEX
from stkd_ros.data.clip import Clip, FrameGap
from stkd_ros.data.image_io import read_rgb


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
            raise ValueError(f'clip_length must be >= 1, got {clip_length}')
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
            raise ValueError(f'{key.label}: label size {label.shape} differs from image size '
                             f'{frames[0].shape[:2]}')
        labels = np.full((len(frames),) + label.shape, IGNORE_INDEX, np.uint8)
        labels[0] = label
        return Clip(np.stack(frames), labels, None, name=key.image.stem, gap=gap)
