"""Write synthetic clips to disk in CamVid's layout, so the CamVid loader reads them back."""

import logging
from pathlib import Path
from typing import Iterator, Tuple

import numpy as np
from stkd_ros.data.camvid import VOID_11
from stkd_ros.data.classes import IGNORE_INDEX
from stkd_ros.data.image_io import write_flo, write_label, write_rgb
from stkd_ros.data.synthetic import SyntheticWorld

log = logging.getLogger(__name__)


def split_of(index: int, clips: int) -> str:
    """
    Assign clip ``index`` to a split, about 70/15/15.

    At least one clip goes to train; from two clips on, one to val; from three on, one to test.
    """
    n_test = max(1, round(0.15 * clips)) if clips >= 3 else 0
    n_val = max(1, round(0.15 * clips)) if clips >= 2 else 0
    if index >= clips - n_test:
        return 'test'
    if index >= clips - n_test - n_val:
        return 'val'
    return 'train'


def sequence_name(index: int) -> str:
    return f'Syn{index:04d}'


def iter_frames(world: SyntheticWorld, clips: int) -> Iterator[Tuple[int, int, tuple]]:
    """Yield (clip, t, (image, label, flow to t+1 or None)) for every frame of every clip."""
    frames = world.config.frames
    for c in range(clips):
        for t in range(frames):
            yield c, t, world.frame(c, t, t + 1 if t + 1 < frames else None)


def write_camvid_layout(world: SyntheticWorld, out: Path, clips: int, on_frame=None) -> dict:
    """
    Write ``clips`` clips under ``out``; every frame is labeled, flow goes to ``flow/``.

    ``on_frame(clip, t, image, label)`` is called for each frame (the bag writer uses it).
    Returns the number of frames written per split.
    """
    out = Path(out)
    counts = {'train': 0, 'val': 0, 'test': 0}
    for c, t, (image, label, flow) in iter_frames(world, clips):
        split = split_of(c, clips)
        stem = f'{sequence_name(c)}_{t:06d}'
        write_rgb(out / split / f'{stem}.png', image)
        write_label(out / f'{split}annot' / f'{stem}.png',
                    np.where(label == IGNORE_INDEX, VOID_11, label))
        if flow is not None:
            write_flo(out / 'flow' / f'{stem}.flo', flow)
        counts[split] += 1
        if on_frame is not None:
            on_frame(c, t, image, label)
    log.info('wrote %s frames to %s', counts, out)
    return counts
