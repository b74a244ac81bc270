"""
eval-bag's side-by-side video of a drive: what each model sees, and where it flickers.

Top row: the frame, then each model's classes over it (its own palette). Bottom row: the
class legend, then under each model the pixels whose class changed from the previous frame
along the flow, :func:`stkd_ros.temporal.changed_pixels` (exactly what flicker counts), in
red; darker where the pixel is not counted (occluded, or carried out of the image). Each
model's panels carry its name and its running flicker (its StabilityMeter's total so far,
the drive's figure at the last frame). Drawn at the flow's working size, where masks are
compared, frame by frame during eval-bag's one pass: nothing of the drive is kept.
"""

import numpy as np

from stkd_ros.report import panels
from stkd_ros.report.video import VideoWriter
from stkd_ros.temporal import changed_pixels, warp_mask

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
        self.previous = {}    # model name -> its last mask at the working size
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

    def add(self, frame: np.ndarray, stamp: int, motion, tracks, masks):
        """
        Draw one frame of the drive.

        ``frame`` HxWx3 RGB; ``motion`` (flow, visible) from the previous frame at the working
        size, or None; ``tracks`` eval-bag's ModelTracks, already updated with this frame;
        ``masks`` each track's mask of this frame at the working size.
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
            bottom.append(self._changes(track, mask, small, motion))
            self.previous[track.name] = mask
        self.writer.add(panels.grid([top, bottom]), stamp)
        self.frames += 1

    def _changes(self, track, mask, small, motion) -> np.ndarray:
        before = self.previous.get(track.name)
        if motion is None or before is None or before.shape != mask.shape:
            blank = panels.grey(panels.fit(small, self.size), 0.2)
            return panels.captioned(blank, f'{track.name}  no previous frame')
        flow, visible = motion
        changed = changed_pixels(before, mask, flow, visible, len(track.segmenter.classes))
        counted = warp_mask(mask, flow)[1] & visible
        drawn = panels.change_map(panels.fit(small, self.size),
                                  panels.fit_marks(changed, self.size),
                                  panels.fit(counted.astype(np.uint8), self.size,
                                             nearest=True) > 0)
        return panels.captioned(drawn, f'{track.name}  changed now '
                                       f'{_figure(track.flicker[-1])}')
