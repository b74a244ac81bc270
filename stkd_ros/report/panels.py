"""Panels of a side-by-side video: fitted images, captions, a change map, a legend, a grid."""

import cv2
import numpy as np
from stkd_ros.data.classes import resize_classes

#: The longest side of one panel. Two models' panels in two rows make a video of 960x356
#: (1:2 frames) to 960x396 (16:9): sharp enough to see a flickering pole, a few MB per 2
#: minutes; smaller frames are enlarged to it, so that captions fit.
PANEL_SIDE = 320
CAPTION_HEIGHT = 18
_FONT, _SCALE = cv2.FONT_HERSHEY_SIMPLEX, 0.42
_TEXT, _BAR = (235, 235, 235), (32, 32, 32)
#: The change map: changed pixels in red over the frame in grey; pixels the figure does not
#: count (occluded, or carried out of the image) darker still.
CHANGED = (255, 40, 40)
_STEADY_GAIN, _UNCOUNTED_GAIN = 0.5, 0.2


def panel_size(shape, side: int = PANEL_SIDE) -> tuple:
    """(height, width) of a panel for an image of ``shape``: longest side ``side``, even."""
    h, w = shape[:2]
    scale = side / max(h, w)
    return max(2, round(h * scale / 2) * 2), max(2, round(w * scale / 2) * 2)


def fit(image: np.ndarray, size, nearest: bool = False) -> np.ndarray:
    """Resize ``image`` to (height, width) ``size``: class maps ``nearest``, images smoothly."""
    if image.shape[:2] == tuple(size):
        return image
    if nearest:
        return resize_classes(image, size)
    # Area averaging to shrink (no aliasing), bilinear to enlarge.
    shrinks = size[0] * size[1] < image.shape[0] * image.shape[1]
    interpolation = cv2.INTER_AREA if shrinks else cv2.INTER_LINEAR
    return cv2.resize(image, (size[1], size[0]), interpolation=interpolation)


def fit_marks(marks: np.ndarray, size) -> np.ndarray:
    """Resize a bool map so that a marked pixel stays marked, also when the map shrinks."""
    if marks.shape == tuple(size):
        return marks
    shrinks = size[0] * size[1] < marks.shape[0] * marks.shape[1]
    marks = marks.astype(np.uint8) * 255
    if not shrinks:
        return resize_classes(marks, size) > 0
    return cv2.resize(marks, (size[1], size[0]), interpolation=cv2.INTER_AREA) > 0


def overlay(frame: np.ndarray, colors: np.ndarray, alpha: float = 0.55) -> np.ndarray:
    """Blend a colour image (a class map through its palette) over the frame."""
    return cv2.addWeighted(frame, 1.0 - alpha, colors, alpha, 0.0)


def grey(frame: np.ndarray, gain: float) -> np.ndarray:
    """Return the frame in grey at ``gain`` of its brightness, as RGB."""
    g = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY).astype(np.float32) * gain
    return np.repeat(g.astype(np.uint8)[..., None], 3, axis=2)


def change_map(frame: np.ndarray, changed: np.ndarray, counted: np.ndarray) -> np.ndarray:
    """Draw the frame in grey, the pixels not ``counted`` darker, the ``changed`` ones red."""
    out = np.where(counted[..., None], grey(frame, _STEADY_GAIN), grey(frame, _UNCOUNTED_GAIN))
    out[changed] = CHANGED
    return out


def heat(values: np.ndarray) -> np.ndarray:
    """Colour a map of values in 0..1 (OpenCV's viridis: dark low, yellow high)."""
    scaled = np.clip(np.nan_to_num(values) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return cv2.cvtColor(cv2.applyColorMap(scaled, cv2.COLORMAP_VIRIDIS), cv2.COLOR_BGR2RGB)


def _fit_text(text: str, width: int) -> str:
    while text and cv2.getTextSize(text, _FONT, _SCALE, 1)[0][0] > width - 6:
        text = text[:-2] + '~'
    return text


def captioned(panel: np.ndarray, text: str) -> np.ndarray:
    """Put the panel under a dark bar that holds ``text`` (cut to fit)."""
    bar = np.empty((CAPTION_HEIGHT, panel.shape[1], 3), np.uint8)
    bar[:] = _BAR
    cv2.putText(bar, _fit_text(text, panel.shape[1]), (3, CAPTION_HEIGHT - 5), _FONT, _SCALE,
                _TEXT, 1, cv2.LINE_AA)
    return np.concatenate([bar, panel], axis=0)


def legend(size, names, palette) -> np.ndarray:
    """Draw a panel of ``size`` with a colour swatch and the name of each class."""
    h, w = size
    out = np.full((h, w, 3), 16, np.uint8)
    row_height = 14
    rows = max(1, (h - 4) // row_height)
    columns = -(-len(names) // rows)
    column_width = w // max(columns, 1)
    for i, (name, colour) in enumerate(zip(names, palette)):
        x, y = (i // rows) * column_width + 4, (i % rows) * row_height + 4
        cv2.rectangle(out, (x, y), (x + 10, y + 10), tuple(int(c) for c in colour), -1)
        cv2.putText(out, _fit_text(str(name), column_width - 14), (x + 14, y + 9), _FONT,
                    _SCALE, _TEXT, 1, cv2.LINE_AA)
    return out


def grid(rows) -> np.ndarray:
    """Tile rows of equally sized panels into one image."""
    return np.concatenate([np.concatenate(row, axis=1) for row in rows], axis=0)
