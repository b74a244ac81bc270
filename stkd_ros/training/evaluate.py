"""Validation: mIoU (per class too), TC and flicker, speed; masks from a Segmenter."""

import time

import numpy as np
from stkd_ros.errors import InputError
from stkd_ros.flow.pairs import PairFlow
from stkd_ros.metrics import ConfusionMatrix
from stkd_ros.temporal import StabilityMeter
from stkd_ros.temporal_fusion import TemporalFusion
import torch


def evaluation_flow(cfg) -> PairFlow:
    """Build the flow of held-out TC and flicker from the config's ``evaluation`` section."""
    return PairFlow(cfg.flow, cfg.flow_max_side, **cfg.flow_args)


class StreetMasks:
    """
    The masks a node streaming a clip's street from its first frame would publish for it.

    Held-out clips are frames of a street (``clip.sequence``, ``clip.times``); each street
    runs as one stream through the segmenter with one fusion state, from frame 0 up to the
    last frame a clip asks for, so the fused state scored is the node's. Clips of one street
    come in time order (the held-out splits' keys), so each frame is segmented once.
    """

    def __init__(self, segmenter, clips, settings):
        if not hasattr(clips, 'sequence_frame'):
            raise InputError(f'--temporal-fusion: {type(clips).__name__} clips are not frames '
                             f'of streams the evaluation can replay; only the synthetic '
                             f"world's held-out streets run as streams so far")
        self.segmenter, self.clips, self.settings = segmenter, clips, settings
        self.sequence, self.masks, self.fusion = None, [], None
        self.segmented, self.seconds = 0, 0.0   # the segmenter's frames and time (speed)

    def __call__(self, clip) -> list:
        """Masks of the clip's first two frames, as the street's stream reached them."""
        if clip.sequence != self.sequence:
            self.sequence, self.masks = clip.sequence, []
            self.fusion = TemporalFusion(self.settings)
        own = dict(zip(clip.times, clip.frames))
        while len(self.masks) <= max(clip.times[:2]):
            t = len(self.masks)
            frame = own[t] if t in own else self.clips.sequence_frame(clip.sequence, t)[0]
            # Consecutive frames of one street: no stamps, no gap to check.
            start = time.perf_counter()
            self.masks.append(self.segmenter.segment(frame, fusion=self.fusion))
            self.seconds += time.perf_counter() - start
            self.segmented += 1
        return [self.masks[t] for t in clip.times[:2]]


def evaluate(segmenter, clips, *, flow, max_clips=None, fusion=None, by_street=False) -> dict:
    """
    Score a :class:`~stkd_ros.inference.Segmenter` on clips of two frames.

    Frame 0 (and frame 1 where labeled) score mIoU; the pair scores TC and flicker
    (``stkd_ros.temporal``) along ``flow``, a :class:`~stkd_ros.flow.pairs.PairFlow`, whose
    description the result names. Each frame goes through the segmenter alone, as in a node
    with temporal fusion off; with ``fusion`` (:class:`~stkd_ros.temporal_fusion.
    FusionSettings`) each street runs as one fused stream (:class:`StreetMasks`), and the
    frames counted in the speed are the stream's. ``by_street`` adds each street's own
    confusion matrix and stability counts (``streets``), for intervals over streets.
    """
    classes = list(segmenter.classes)
    cm, stability = ConfusionMatrix(len(classes)), StabilityMeter(len(classes))
    streets = StreetMasks(segmenter, clips, fusion) if fusion is not None else None
    own = {}     # street -> (its ConfusionMatrix, its StabilityMeter), with by_street
    forward_s, frames_done = 0.0, 0
    n = len(clips) if max_clips is None else min(len(clips), max_clips)
    for i in range(n):
        clip = clips[i]
        if streets is None:
            start = time.perf_counter()
            masks = [segmenter.segment(frame) for frame in clip.frames[:2]]
            forward_s += time.perf_counter() - start
            frames_done += len(masks)
        else:
            masks = streets(clip)
        meters = [(cm, stability)]
        if by_street:
            meters.append(own.setdefault(clip.sequence, (ConfusionMatrix(len(classes)),
                                                         StabilityMeter(len(classes)))))
        pair = None
        if len(masks) > 1:
            motion, visible = flow.between(clip, 0, 1)
            pair = (flow.shrink(masks[0], nearest=True), flow.shrink(masks[1], nearest=True),
                    motion, visible)
        for matrix, meter in meters:
            matrix.update(torch.from_numpy(np.stack(masks)), torch.from_numpy(clip.labels[:2]))
            if pair is not None:
                meter.add(*pair)
    if streets is not None:
        forward_s, frames_done = streets.seconds, streets.segmented
    out = cm.summary(classes)
    out.update(stability.summary(classes))
    out['stability_flow'] = flow.description
    out['temporal_fusion'] = 'off' if fusion is None else fusion.describe()
    out['ms_per_frame'] = 1e3 * forward_s / max(frames_done, 1)
    out['fps'] = frames_done / forward_s if forward_s else float('nan')
    out['clips'] = n
    if by_street:
        out['streets'] = {name: {'confusion': m.mat.tolist(), 'stability': s.counted.tolist()}
                          for name, (m, s) in own.items()}
    return out
