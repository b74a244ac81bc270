"""Validation: mIoU (per class too), TC and flicker, speed; masks from a Segmenter."""

import time

import numpy as np
from stkd_ros.flow.pairs import PairFlow
from stkd_ros.metrics import ConfusionMatrix
from stkd_ros.temporal import StabilityMeter
import torch


def evaluation_flow(cfg) -> PairFlow:
    """Build the flow of held-out TC and flicker from the config's ``evaluation`` section."""
    return PairFlow(cfg.flow, cfg.flow_max_side, **cfg.flow_args)


def evaluate(segmenter, clips, *, flow, max_clips=None) -> dict:
    """
    Score a :class:`~stkd_ros.inference.Segmenter` on clips of two frames.

    Frame 0 (and frame 1 where labeled) score mIoU; the pair scores TC and flicker
    (``stkd_ros.temporal``) along ``flow``, a :class:`~stkd_ros.flow.pairs.PairFlow`, whose
    description the result names. Each frame goes through the segmenter alone, as in a node.
    """
    classes = list(segmenter.classes)
    cm, stability = ConfusionMatrix(len(classes)), StabilityMeter(len(classes))
    forward_s, frames_done = 0.0, 0
    n = len(clips) if max_clips is None else min(len(clips), max_clips)
    for i in range(n):
        clip = clips[i]
        start = time.perf_counter()
        masks = [segmenter.segment(frame) for frame in clip.frames[:2]]
        forward_s += time.perf_counter() - start
        frames_done += len(masks)
        cm.update(torch.from_numpy(np.stack(masks)), torch.from_numpy(clip.labels[:2]))
        if len(masks) > 1:
            motion, visible = flow.between(clip, 0, 1)
            stability.add(flow.shrink(masks[0], nearest=True),
                          flow.shrink(masks[1], nearest=True), motion, visible)
    out = cm.summary(classes)
    out.update(stability.summary(classes))
    out['stability_flow'] = flow.description
    out['ms_per_frame'] = 1e3 * forward_s / max(frames_done, 1)
    out['fps'] = frames_done / forward_s if forward_s else float('nan')
    out['clips'] = n
    return out
