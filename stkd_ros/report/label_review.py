"""
Pseudo-label review: a labeled sequence as video, to scrub through what a student is taught.

Per frame, side by side: the frame, its labels over it (the palette; no label shows the
frame in grey), the class legend and the confidence map (viridis: dark unsure, yellow sure).
The same writer as eval-bag's drive video (H.264 MP4, :mod:`stkd_ros.report.video`).

Independent of the labeling code: :func:`write_label_review` takes (frame, labels,
confidence) triples from anywhere; ``stkd_ros.labeling.store.labeled_frames`` reads a store's.
"""

import logging
from typing import Iterable, Optional, Sequence, Tuple

import numpy as np
from stkd_ros.data.classes import IGNORE_INDEX, palette_lut
from stkd_ros.errors import InputError
from stkd_ros.report import panels
from stkd_ros.report.video import VideoInfo, VideoWriter
from tqdm import tqdm

log = logging.getLogger(__name__)

#: Below this confidence a label is called unsure in the captions.
UNSURE = 0.5


class ReviewError(InputError):
    """A sequence that cannot be reviewed: missing frames or maps that do not fit."""


def _confidence01(confidence: np.ndarray) -> np.ndarray:
    if confidence.dtype == np.uint8:          # the store's PNGs: probability x 255
        return confidence.astype(np.float32) / 255.0
    return confidence.astype(np.float32)


def review_frame(frame: np.ndarray, labels: np.ndarray, confidence: np.ndarray, *,
                 index: int, classes: Sequence[str], lut: np.ndarray, size) -> np.ndarray:
    """One frame of the review video: frame | labels over it, legend | confidence."""
    if labels.shape != confidence.shape:
        raise ReviewError(f'frame {index}: labels {labels.shape} and confidence '
                          f'{confidence.shape} differ in size')
    picture = panels.fit(frame, size)
    labels = panels.fit(labels, size, nearest=True)
    sure = panels.fit(_confidence01(confidence), size)
    none = labels == IGNORE_INDEX
    labeled = np.where(none[..., None], panels.grey(picture, 0.6),
                       panels.overlay(picture, lut[labels]))
    labeled_sure = sure[~none]
    unsure = float((labeled_sure < UNSURE).mean()) if labeled_sure.size else float('nan')
    return panels.grid([
        [panels.captioned(picture, f'frame {index}'),
         panels.captioned(labeled, f'labels  no label {none.mean():.1%}')],
        [panels.captioned(panels.legend(size, classes, lut[:len(classes)]),
                          'classes (grey: no label)'),
         panels.captioned(panels.heat(sure), f'confidence  mean {sure.mean():.2f}  below '
                                             f'{UNSURE}: {unsure:.1%}')]])


def write_label_review(items: Iterable[Tuple[np.ndarray, np.ndarray, np.ndarray]], out, *,
                       classes: Sequence[str], palette, fps: float = 30.0,
                       total: Optional[int] = None) -> VideoInfo:
    """
    Write the review video of ``items`` to ``out`` (an .mp4 file); returns what was written.

    ``items``: (frame HxWx3 uint8 RGB, labels HxW uint8 class ids with 255 for none,
    confidence HxW: uint8 probability x 255 as a label store holds it, or float in 0..1), in
    time order; labels and confidence may have another size than the frame. ``classes`` and
    ``palette`` ((K, 3) RGB) name and colour the class ids; ``fps`` is the source's frame
    rate; ``total`` the number of items, for the progress bar. An empty sequence is an
    error; the file appears only when complete.
    """
    lut = palette_lut(np.asarray(palette, np.uint8))
    size = None
    with VideoWriter(out, fps=fps) as writer:
        for i, (frame, labels, confidence) in enumerate(
                tqdm(items, total=total, desc='label review', unit='frame', disable=None)):
            size = size or panels.panel_size(frame.shape)
            writer.add(review_frame(frame, labels, confidence, index=i, classes=classes,
                                    lut=lut, size=size), round(i * 1e9 / fps))
        if size is None:
            raise ReviewError(f'nothing to review for {out}: the sequence has no frame')
    return writer.info
