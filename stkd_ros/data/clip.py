"""The unit every dataset returns: a short run of consecutive frames around a labeled one."""

from dataclasses import dataclass
import random
from typing import Optional, Tuple, Union

import numpy as np
from stkd_ros.errors import InputError


@dataclass
class Clip:
    """
    Frames of one clip, in time order; frame 0 is the key (labeled) frame.

    ``flows[i]`` is the flow from frame i to frame i+1 in pixels (x, y), such that frame i at
    pixel p shows what frame i+1 shows at p + flow. Datasets without known flow leave it None.
    """

    frames: np.ndarray                # (T, H, W, 3) uint8 RGB
    labels: np.ndarray                # (T, H, W) uint8; 255 everywhere on unlabeled frames
    flows: Optional[np.ndarray]       # (T-1, H, W, 2) float32, or None
    name: str = ''
    gap: int = 1                      # frames between consecutive clip frames
    valid: Optional[np.ndarray] = None   # (H, W) bool: False on padding added by a crop
    visible: Optional[np.ndarray] = None   # (H, W) bool: frame 0's pixels frame 1 shows too
    # Where the frames came from, for unlabeled video: the sequence's name and each frame's
    # index in it, as a label store (stkd_ros.labeling) names them; empty where unknown.
    sequence: str = ''
    times: Tuple[int, ...] = ()
    # A label store's classes and confidence (x 255) for each frame (stkd_ros.labeling).
    targets: Optional[np.ndarray] = None      # (T, H, W) uint8, 255 where none
    confidence: Optional[np.ndarray] = None   # (T, H, W) uint8

    def __post_init__(self):
        t, h, w = self.frames.shape[:3]
        if self.labels.shape != (t, h, w):
            raise InputError(f'clip {self.name!r}: labels {self.labels.shape} do not match '
                             f'frames {self.frames.shape}')
        for name in ('targets', 'confidence'):
            if getattr(self, name) is not None and getattr(self, name).shape != (t, h, w):
                raise InputError(f'clip {self.name!r}: {name} {getattr(self, name).shape} do '
                                 f'not match frames {self.frames.shape}')
        if self.valid is not None and self.valid.shape != (h, w):
            raise InputError(f'clip {self.name!r}: valid mask {self.valid.shape} does not '
                             f'match frames {self.frames.shape}')
        if self.times and len(self.times) != t:
            raise InputError(f'clip {self.name!r}: {len(self.times)} frame indices for {t} '
                             f'frames')
        if self.flows is not None and self.flows.shape != (t - 1, h, w, 2):
            raise InputError(f'clip {self.name!r}: flows {self.flows.shape} do not match '
                             f'frames {self.frames.shape}')


class FrameGap:
    """
    The distance k between the key frame and the next frame of a clip.

    A fixed int, or an inclusive (low, high) range drawn at random per sample for training.
    """

    def __init__(self, gap: Union[int, Tuple[int, int]]):
        low, high = (gap, gap) if isinstance(gap, int) else tuple(gap)
        if not 1 <= low <= high:
            raise InputError(f'frame gap must satisfy 1 <= low <= high, got {gap!r}')
        self.low, self.high = int(low), int(high)

    def sample(self) -> int:
        return self.low if self.low == self.high else random.randint(self.low, self.high)

    def __repr__(self):
        return f'FrameGap({self.low}, {self.high})'
