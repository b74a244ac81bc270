"""
The labeled video of a config: sequences of frames, a few of them labeled, to carry labels in.

- the synthetic world: each training street is a video of ``frames`` frames whose labeled
  ones are those training keeps (``label_every``: one in 30 as Cityscapes is annotated); the
  world's truth of every other frame scores what is carried;
- Cityscapes: the 30-frame snippets of ``leftImg8bit_sequence/train``, each labeled at the
  frame ``gtFine/train`` annotates (its 20th); CamVid: the runs of ``sequences/`` labeled at
  the frames ``trainannot`` (or the 32-class colour files) annotate. There only the labeled
  frames have truth, so nothing else is scored.

Recorded drives have no labeled frames here: training reads one image topic of a bag.
"""

from dataclasses import dataclass
from typing import List, Tuple

from stkd_ros.errors import InputError
from stkd_ros.labeling.sources import Sequence, video_sequences


@dataclass(frozen=True)
class LabeledSequence:
    """A sequence (``labeling.sources.Sequence``) and the frames whose labels are given."""

    sequence: Sequence
    labeled: Tuple[int, ...]

    @property
    def name(self) -> str:
        return self.sequence.name

    def labels(self) -> dict:
        """{labeled frame: its label map (H, W) uint8}."""
        return {k: self.sequence.truth(k) for k in self.labeled}

    def distance(self, t: int) -> int:
        """Frames between ``t`` and its nearest labeled frame."""
        return min(abs(t - k) for k in self.labeled)


def labeled_sequences(data_cfg) -> List[LabeledSequence]:
    """Return the labeled sequences of ``data_cfg`` (a DataConfig), in order."""
    if data_cfg.dataset == 'synthetic':
        return _synthetic_streets(data_cfg)
    if data_cfg.root is None:
        raise InputError(f'data.root must name the {data_cfg.dataset} directory')
    if data_cfg.dataset == 'camvid':
        from stkd_ros.data.camvid import camvid_video as video
    else:
        from stkd_ros.data.cityscapes import cityscapes_video as video
    out = []
    for sequence in video_sequences(video(data_cfg.root, clip_length=1)):
        labeled = tuple(t for t in range(sequence.frames) if sequence.truth(t) is not None)
        if labeled and sequence.frames > 1:
            out.append(LabeledSequence(sequence, labeled))
    if not out:
        raise InputError(f'{data_cfg.root}: no {data_cfg.dataset} video sequence holds an '
                         f'annotated frame to carry labels from')
    return out


def _synthetic_streets(data_cfg) -> List[LabeledSequence]:
    from stkd_ros.data.datasets import build_clips
    s = data_cfg.synthetic
    if s.label_every == 1:
        raise InputError('data.synthetic.label_every is 1: every frame of the labeled streets '
                         'has its label, there is nothing to carry (set it to e.g. 30)')
    streets = build_clips(data_cfg, 'train', clip_length=1, gap=1)
    labeled = tuple(t for t in range(s.frames) if streets.labeled(t))
    return [LabeledSequence(sequence, labeled) for sequence in video_sequences(streets)]
