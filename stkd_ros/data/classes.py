"""Class tables: CamVid's 11 classes, their palette, the ignore label; resizing class maps."""

import cv2
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


def resize_classes(classes: np.ndarray, size) -> np.ndarray:
    """
    (h, w) class ids, or any map whose values must not blend, -> (H, W) ``size``.

    Nearest neighbour taken at pixel centres (OpenCV's INTER_NEAREST_EXACT), on the grid that
    bilinear and area resizing put the frame on, so a class stays on its pixels. OpenCV's
    INTER_NEAREST samples at floor(x / scale) instead: its map lies up to half a source pixel
    up and left of the frame, which mislabels 2-4% of the pixels at class edges of a view
    rescaled by 0.75-1.25 (test/test_transforms.py).
    """
    out_h, out_w = size
    if classes.shape[:2] == (out_h, out_w):
        return classes
    return cv2.resize(classes, (out_w, out_h), interpolation=cv2.INTER_NEAREST_EXACT)
