"""
`stkd eval-bag`'s evaluation pass: run one or more models over every frame of a recorded drive.

One pass over the bag: each frame is decoded once, the flow from the previous frame and its
occlusion check are computed once (:class:`~stkd_ros.flow.pairs.StreamFlow`, as the flicker
monitor does) and shared by every model, and each model's mask is compared with its previous
mask (:class:`stkd_ros.temporal.StabilityMeter`: flicker, TC), with the label when the bag has
a label topic (mIoU: each label matched to its frame by stamp within a bounded window), and
timed. Whoever draws the drive (the report's video) gets each frame with every model's mask
at the flow's working size as the pass goes (``on_frame``), and ``--write-bag``'s copy of the
drive gets every message read and each frame's full-size masks. Each model keeps the frame
and every model's masks of its steadiest and least steady step so far (the report's samples
show what was scored, fused or not, without a second pass). Nothing else grows with the
drive's length but the per-step figures (a few numbers per frame).

With temporal fusion (``--temporal-fusion``) each model is scored twice from one forward
pass: its per-frame masks (the argmax of the probabilities the fusion takes, exactly the masks
with fusion off) as ``<model>``, and its fused masks as ``<model> + fusion``, the drive one
stream: one :class:`~stkd_ros.temporal_fusion.TemporalFusion` per model, fed each frame and its
header stamp. Both come from :meth:`Segmenter.per_frame_and_fused_masks`, the path
segment_node's masks take too, so eval-bag scores what the node publishes. So one run gives
the comparison on a drive: every figure and the video have both, side by side; the annotated
bag holds the fused masks under the model's name, what the node publishes with
``temporal_fusion`` on. The per-frame row's latency is the forward pass (with the softmax the
fusion needs) and the per-frame mask; the fused row's adds the fusion.
"""

from contextlib import nullcontext
from dataclasses import dataclass, field
import logging
from pathlib import Path
import time
from typing import Callable, List, Optional

import numpy as np
from stkd_ros.bag.annotate import AnnotatedBag
from stkd_ros.bag.messages import decode
from stkd_ros.bag.reader import BagError, iter_messages, open_bag
from stkd_ros.bag.stamp_matching import StampMatcher
from stkd_ros.flow.pairs import StreamFlow
from stkd_ros.image_msgs import ImageError
from stkd_ros.image_msgs import mask_to_array, stamp_ns
from stkd_ros.inference import ModelRunError, Segmenter
from stkd_ros.metrics import ConfusionMatrix
from stkd_ros.temporal import pair_figures, StabilityMeter
from stkd_ros.temporal_fusion import FusionSettings, header_seconds, TemporalFusion
import torch
from tqdm import tqdm

log = logging.getLogger(__name__)

#: The fused track's name: the model's, and this.
FUSED = ' + fusion'


@dataclass
class ModelTrack:
    """Everything measured for one model along the drive."""

    name: str
    segmenter: Segmenter
    flicker: List[float] = field(default_factory=list)   # each step's own, for plots
    tc: List[float] = field(default_factory=list)
    stamps: List[int] = field(default_factory=list)
    latency_ms: List[float] = field(default_factory=list)
    fusion: Optional[TemporalFusion] = None               # the model's stream state, if fused

    def __post_init__(self):
        k = len(self.segmenter.classes)
        self.confusion = ConfusionMatrix(k)
        self.stability = StabilityMeter(k)            # the figures reported: all steps
        self.class_pixels = np.zeros(k, np.int64)     # predicted pixels per class
        self.prev_mask = None
        self.last_pair = None                         # PairCounts of the last frame's pair
        self.moments = {}   # 'most_stable'/'least_stable' -> (flicker, stamp, frame, masks)

    def add_mask(self, stamp, mask, small, motion):
        """
        Add the model's mask of the next frame.

        ``small`` is the mask at the flow's working size, ``motion`` the (flow, visible) pair
        from the previous frame (None for the first frame).
        """
        k = len(self.class_pixels)
        self.class_pixels += np.bincount(mask.ravel(), minlength=k)[:k]
        self.last_pair = None
        if motion is not None and self.prev_mask is not None:
            self.last_pair = self.stability.add(self.prev_mask, small, *motion)
            step = pair_figures(self.last_pair)
            self.flicker.append(step['flicker'])
            self.tc.append(step['tc'])
            self.stamps.append(stamp)
        self.prev_mask = small

    def keep_moment(self, frame, stamp, masks):
        """
        Keep the frame and every model's full-size masks at this model's extreme steps.

        Its least and most steady step so far; of equal ones the first, as ``nanargmax``.
        """
        if self.last_pair is None or np.isnan(self.flicker[-1]):
            return
        step = self.flicker[-1]
        for kind, better in (('least_stable', step.__gt__), ('most_stable', step.__lt__)):
            if kind not in self.moments or better(self.moments[kind][0]):
                self.moments[kind] = (step, stamp, frame, masks)

    def score(self, mask, label):
        if mask.shape != label.shape:
            raise BagError(f'label size {label.shape} differs from image size {mask.shape}')
        self.confusion.update(torch.from_numpy(mask), torch.from_numpy(label))


def _names(models) -> List[str]:
    stems = [Path(m).stem for m in models]
    return [s if stems.count(s) == 1 else f'{Path(m).parent.name}/{s}'
            for s, m in zip(stems, models)]


def _runs(models, fusion: Optional[FusionSettings]) -> list:
    """
    One (per-frame track, fused track or None) per model, named by :func:`_names`.

    With ``fusion`` both tracks of a model share its Segmenter, and each frame's forward pass.
    """
    runs = []
    for name, model in zip(_names(models), models):
        segmenter = Segmenter(model)
        fused = fusion and ModelTrack(name + FUSED, segmenter, fusion=TemporalFusion(fusion))
        runs.append((ModelTrack(name, segmenter), fused))
    return runs


def _segment(plain: ModelTrack, fused: Optional[ModelTrack], frame: np.ndarray, index: int,
             msg, topic: str) -> list:
    """Return the masks of the frame of ``plain`` (and of ``fused``), timing each track."""
    try:
        start = time.perf_counter()
        fusions = None if fused is None else [fused.fusion]
        (alone, mask), = plain.segmenter.per_frame_and_fused_masks(
            [frame], fusions, [header_seconds(msg.header.stamp)])
        seconds = time.perf_counter() - start
        if fused is None:
            plain.latency_ms.append(seconds * 1e3)
            return [alone]
        # The per-frame row: all but the stage's own time (its update and fused mask).
        plain.latency_ms.append((seconds - fused.fusion.last_seconds) * 1e3)
        fused.latency_ms.append(seconds * 1e3)
        return [alone, mask]
    except ModelRunError as exc:
        # The model's network raised (any other error is a bug and keeps its traceback): the
        # bag is fine and the other models may be, so say which model broke where, in one
        # line; the traceback stays in the debug log.
        log.debug('model %s failed', plain.name, exc_info=True)
        raise ModelRunError(f'model {plain.name} failed on frame {index + 1} of {topic} '
                            f'(stamp {stamp_ns(msg)}): {exc.reason}', exc.reason) from exc


def _score(tracks, masks, label):
    for track, mask in zip(tracks, masks):
        track.score(mask, label)


def evaluate_bag(bag, models, topic: str, label_topic: str = None,
                 max_frames: int = None, on_frame: Callable = None, write_bag=None,
                 fusion: FusionSettings = None) -> dict:
    """
    Run every model over ``topic``; returns per-model tracks and the frame stamps.

    ``on_frame(frame, stamp, tracks, masks)``, when given, is called after each frame
    has been scored, with the tracks and each one's mask at the flow's working size.
    ``write_bag``: a path where the drive is copied with every model's masks (MCAP).
    ``fusion``: temporal fusion's settings, one state per model, each model then scored with
    its per-frame and its fused masks, two tracks (None: per-frame masks only).
    """
    runs = _runs(models, fusion)
    tracks = [t for run in runs for t in run if t is not None]
    # The annotated bag holds what the node publishes: fused masks if fused, under the model.
    published = [tracks.index(fused or plain) for plain, fused in runs]
    stream = StreamFlow()
    matcher = StampMatcher() if label_topic and label_topic != topic else None
    stamps, rejected = [], 0
    topics = [topic] + ([label_topic] if matcher else [])
    with open_bag(bag) as reader, \
            (AnnotatedBag(write_bag, reader, [plain.name for plain, _ in runs]) if write_bag
             else nullcontext()) as annotated:
        total = sum(c.msgcount for c in reader.connections if c.topic == topic)
        bar = tqdm(total=min(total, max_frames or total), desc='eval-bag', unit='frame',
                   disable=None)
        copy = annotated.copy if annotated else None
        for name, msgtype, bag_time, msg in iter_messages(reader, topics, copy=copy):
            if name != topic:
                label = mask_to_array(msg)
                masks = matcher.add_label(stamp_ns(msg), label)
                if masks is not None:
                    _score(tracks, masks, label)
                continue
            try:
                frame = decode(msgtype, msg)
            except ImageError as exc:
                rejected += 1
                log.warning('skipped a frame on %s: %s', topic, exc)
                continue
            stamp = stamp_ns(msg)
            motion = stream.update(frame)
            masks = [m for plain, fused in runs
                     for m in _segment(plain, fused, frame, len(stamps), msg, topic)]
            small_masks = [stream.shrink(m, nearest=True) for m in masks]
            for track, mask, small in zip(tracks, masks, small_masks):
                track.add_mask(stamp, mask, small, motion)
            for track in tracks:
                track.keep_moment(frame, stamp, masks)
            if matcher is not None:
                label = matcher.add_frame(stamp, masks)
                if label is not None:
                    _score(tracks, masks, label)
            if annotated:
                annotated.add_masks(bag_time, stamp, msg.header.frame_id,
                                    [(masks[i], tracks[i].segmenter.colorize(masks[i]))
                                     for i in published])
            if on_frame is not None:
                on_frame(frame, stamp, tracks, small_masks)
            stamps.append(stamp)
            bar.update(1)
            if max_frames and len(stamps) >= max_frames:
                break
        bar.close()
    if not stamps:
        raise BagError(f'no decodable frame on {topic} in {bag}')
    unmatched = matcher.finish() if matcher else 0
    if unmatched:
        log.warning('%d of the %d labels on %s matched no frame of %s within %d frames of '
                    'its stamp: left out of mIoU', unmatched, matcher.received, label_topic,
                    topic, matcher.window)
    return {'tracks': tracks, 'stamps': stamps, 'stability_flow': stream.description,
            'labeled': bool(matcher and matcher.received), 'unmatched_labels': unmatched,
            'rejected': rejected, 'topic': topic, 'bag': str(bag),
            'temporal_fusion': fusion.describe() if fusion else 'off'}
