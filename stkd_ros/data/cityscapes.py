"""
Cityscapes (Cordts et al. CVPR 2016) with trainIds from the official label table.

Expected layout under ``root``::

    leftImg8bit/{split}/{city}/{city}_{seq}_{frame}_leftImg8bit.png
    gtFine/{split}/{city}/{city}_{seq}_{frame}_gtFine_labelIds.png
    leftImg8bit_sequence/{split}/{city}/{city}_{seq}_{frame}_leftImg8bit.png   (optional)

The sequence package holds the 30-frame snippet around each labeled frame (the labeled one is
the 20th), so neighbours up to 10 frames after a labeled frame exist there.
"""

from pathlib import Path

import numpy as np
from stkd_ros.data.classes import IGNORE_INDEX
from stkd_ros.data.image_io import read_label
from stkd_ros.data.video import (consecutive_runs, KeyFrame, LabeledVideoDataset, require_dir,
                                 UnlabeledVideo)
from stkd_ros.errors import InputError

SPLITS = ('train', 'val', 'test')


def _label_table():
    """Class names, palette and the labelId -> trainId lookup, from cityscapesscripts."""
    try:
        from cityscapesscripts.helpers.labels import labels
    except ImportError as exc:   # pragma: no cover - it is a declared dependency
        raise ImportError('Cityscapes needs the cityscapesscripts package '
                          '(pip install cityscapesscripts)') from exc
    train = sorted((lab for lab in labels if 0 <= lab.trainId < 255), key=lambda x: x.trainId)
    lut = np.full(256, IGNORE_INDEX, np.uint8)
    for lab in labels:
        if 0 <= lab.id < 256 and 0 <= lab.trainId < 255:
            lut[lab.id] = lab.trainId
    names = tuple(lab.name for lab in train)
    palette = np.array([lab.color for lab in train], np.uint8)
    return names, palette, lut


CITYSCAPES_CLASSES, CITYSCAPES_PALETTE, LABEL_ID_TO_TRAIN_ID = _label_table()


def _neighbour_finder(sequence_dir: Path, city: str, seq: str, frame: str):
    def neighbour(offset: int) -> Path:
        name = f'{city}_{seq}_{int(frame) + offset:06d}_leftImg8bit.png'
        return sequence_dir / city / name
    return neighbour


class CityscapesClips(LabeledVideoDataset):
    """Cityscapes clips: a finely labeled frame and the sequence frames ``gap`` after it."""

    classes, palette = CITYSCAPES_CLASSES, CITYSCAPES_PALETTE

    def __init__(self, root, *, split: str = 'train', gap=1, clip_length: int = 2):
        root = Path(root)
        if split not in SPLITS:
            raise InputError(f'unknown Cityscapes split {split!r}; expected one of {SPLITS}')
        require_dir(root, 'Cityscapes root')
        images = require_dir(root / 'leftImg8bit' / split, f'Cityscapes {split} images')
        labels = require_dir(root / 'gtFine' / split, f'Cityscapes {split} fine labels')
        sequence = root / 'leftImg8bit_sequence' / split
        if clip_length > 1:
            require_dir(sequence, f'Cityscapes {split} sequence frames (leftImg8bit_sequence)')
        keys = []
        for img in sorted(images.glob('*/*_leftImg8bit.png')):
            city, seq, frame = img.name[:-len('_leftImg8bit.png')].rsplit('_', 2)
            label = labels / city / f'{city}_{seq}_{frame}_gtFine_labelIds.png'
            if label.is_file():
                keys.append(KeyFrame(img, label, _neighbour_finder(sequence, city, seq, frame)))
        super().__init__(keys, gap=gap, clip_length=clip_length, name=f'Cityscapes {split}')

    def load_label(self, path: Path) -> np.ndarray:
        return LABEL_ID_TO_TRAIN_ID[read_label(path)]


def cityscapes_video(root, *, gap=1, clip_length: int = 2) -> UnlabeledVideo:
    """
    Every training frame without a label: the 30-frame snippets and, when present, train_extra.

    The snippets (``leftImg8bit_sequence/train``) make clips of any length; the coarsely
    annotated ``leftImg8bit/train_extra`` frames are single images, so only a one-frame task
    uses them.
    """
    root = Path(root)
    sequence = require_dir(root / 'leftImg8bit_sequence' / 'train',
                           'Cityscapes training video (leftImg8bit_sequence)')
    by_snippet = {}
    for path in sequence.glob('*/*_leftImg8bit.png'):
        city, seq, _ = path.name[:-len('_leftImg8bit.png')].rsplit('_', 2)
        by_snippet.setdefault((city, seq), []).append(path)

    def frame_number(path: Path) -> int:
        return int(path.name[:-len('_leftImg8bit.png')].rsplit('_', 1)[1])

    runs = [run for key in sorted(by_snippet)
            for run in consecutive_runs(by_snippet[key], frame_number)]
    extra = root / 'leftImg8bit' / 'train_extra'
    if extra.is_dir():
        runs += [[path] for path in sorted(extra.glob('*/*_leftImg8bit.png'))]
    return UnlabeledVideo(runs, gap=gap, clip_length=clip_length,
                          name='Cityscapes unlabeled video', sequence_name=_run_name,
                          truth=_fine_annotation(root))


def _run_name(run) -> str:
    """Name a run by its first frame: ``{city}_{seq}_{frame}``."""
    return run[0].name[:-len('_leftImg8bit.png')]


def _fine_annotation(root: Path):
    """Return a function: a sequence frame -> its fine trainIds (the 20th of each snippet)."""
    def truth(frame: Path):
        if frame.parent.parent.parent.name != 'leftImg8bit_sequence':
            return None    # train_extra: coarse annotations only, not scored
        stem = frame.name[:-len('_leftImg8bit.png')]
        label = root / 'gtFine' / 'train' / frame.parent.name / f'{stem}_gtFine_labelIds.png'
        return LABEL_ID_TO_TRAIN_ID[read_label(label)] if label.is_file() else None
    return truth
