"""
eval-bag's side-by-side video of a drive: what each model sees, and where it flickers.

Top row: the frame, then each model's classes over it (its own palette). Bottom row: the
class legend, then under each model the pixels whose class changed from the previous frame
along the flow (the ``changed`` map of the pair its StabilityMeter just counted: exactly
what flicker counts), in red; darker where a pixel is not counted (occluded, carried out of
the image, or unlabeled). Each model's panels carry its name and its running flicker (its
StabilityMeter's total so far, the drive's figure at the last frame). Drawn at the flow's
working size, where masks are compared, frame by frame during eval-bag's one pass: nothing
of the drive is kept.
"""

import numpy as np

from stkd_ros.report import panels
from stkd_ros.report.video import VideoWriter

VIDEO_NAME = 'drive.mp4'


def _figure(value: float) -> str:
    return 'n/a' if np.isnan(value) else f'{value:.4f}'


class DriveVideo:
    """
    Receive eval-bag's frames (:meth:`add`, its ``on_frame``) and write ``path`` (MP4).

    A context manager: the video is closed when the pass ends and dropped when it fails.
    """

    def __init__(self, path):
        self.writer = VideoWriter(path)
        self.size = None      # panel (height, width), from the first frame
        self.t0 = None
        self.frames = 0

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        return self.writer.__exit__(exc_type, exc, tb)

    @property
    def info(self):
        """Return the written video's :class:`~stkd_ros.report.video.VideoInfo` once closed."""
        return self.writer.info

    def add(self, frame: np.ndarray, stamp: int, tracks, masks):
        """
        Draw one frame of the drive.

        ``frame`` HxWx3 RGB; ``tracks`` eval-bag's ModelTracks, already updated with this
        frame (each holds the pair it just counted); ``masks`` each track's mask of this frame
        at the working size.
        """
        small = panels.fit(frame, masks[0].shape)
        if self.size is None:
            self.size, self.t0 = panels.panel_size(small.shape), stamp
        picture = panels.fit(small, self.size)
        top = [panels.captioned(picture, f'frame {self.frames + 1}  '
                                         f't {(stamp - self.t0) / 1e9:.2f} s')]
        first = tracks[0].segmenter
        bottom = [panels.captioned(
            panels.legend(self.size, first.classes, first.meta['palette']),
            'classes' if len(tracks) == 1 else f"classes ({tracks[0].name}'s palette)")]
        for track, mask in zip(tracks, masks):
            colours = panels.fit(track.segmenter.colorize(mask), self.size, nearest=True)
            top.append(panels.captioned(
                panels.overlay(picture, colours),
                f'{track.name}  flicker so far {_figure(track.stability.flicker())}'))
            bottom.append(self._changes(track, small))
        self.writer.add(panels.grid([top, bottom]), stamp)
        self.frames += 1

    def _changes(self, track, small) -> np.ndarray:
        pair = track.last_pair
        if pair is None:
            blank = panels.grey(panels.fit(small, self.size), 0.2)
            return panels.captioned(blank, f'{track.name}  no previous frame')
        drawn = panels.change_map(panels.fit(small, self.size),
                                  panels.fit_marks(pair.changed, self.size),
                                  panels.fit(pair.scored.astype(np.uint8), self.size,
                                             nearest=True) > 0)
        return panels.captioned(drawn, f'{track.name}  changed now '
                                       f'{_figure(track.flicker[-1])}')
