"""Class tables: CamVid's 11 classes, their palette, and the ignore label."""

import numpy as np

#: Label value for pixels that carry no class (void, unlabeled). Losses and metrics skip it.
IGNORE_INDEX = 255

#: The 11 CamVid classes in the order of the common SegNet split (Brostow et al. 2009).
CAMVID_CLASSES = (
    'sky', 'building', 'pole', 'road', 'sidewalk', 'tree',
    'sign', 'fence', 'car', 'pedestrian', 'bicyclist',
)

#: RGB colours for the 11 classes, taken from CamVid's own 32-class colour table.
CAMVID_PALETTE = np.array([
    (128, 128, 128),  # sky
    (128, 0, 0),      # building
    (192, 192, 128),  # pole
    (128, 64, 128),   # road
    (0, 0, 192),      # sidewalk
    (128, 128, 0),    # tree
    (192, 128, 128),  # sign
    (64, 64, 128),    # fence
    (64, 0, 128),     # car
    (64, 64, 0),      # pedestrian
    (0, 128, 192),    # bicyclist
], dtype=np.uint8)


def palette_lut(palette: np.ndarray) -> np.ndarray:
    """Return a 256x3 lookup table: class id -> RGB, with black for ids past the palette."""
    lut = np.zeros((256, 3), dtype=np.uint8)
    lut[:len(palette)] = palette
    return lut


def colorize(label: np.ndarray, palette: np.ndarray = CAMVID_PALETTE) -> np.ndarray:
    """Map an HxW class-id array to an HxWx3 uint8 RGB image (ignore -> black)."""
    return palette_lut(palette)[label]
