"""
One sequence labeled frame by frame: teacher passes and flow kept in a sliding window.

Frame t needs the probabilities of frames t-r..t+r and the flow between t and each of them.
The window keeps both while they can still be used, so each frame goes through the teacher
once per sequence and each pair's flow is estimated once (both ways), however many frames
fuse it. Frames already in the store are skipped; their neighbours are still computed where
a frame to do needs them. The teacher takes ``batch`` frames at a time: the next ones the
window will need, read ahead.
"""

from typing import Iterable, Iterator, Tuple

import numpy as np
from stkd_ros.labeling.fusion import fuse
from stkd_ros.labeling.passes import TeacherPasses
from stkd_ros.labeling.sources import Sequence
import torch


def label_sequence(sequence: Sequence, teacher: TeacherPasses, todo: Iterable[int], *,
                   radius: int = 0, links=None, batch: int = 1
                   ) -> Iterator[Tuple[int, torch.Tensor]]:
    """
    Yield (t, fused probabilities (K, H, W)) for each frame t of ``todo``, in time order.

    ``links`` (fusion.EstimatedLinks or ExactLinks) gives the flow between frames; it is
    needed when ``radius`` > 0. ``batch``: frames per teacher call.
    """
    if radius and links is None:
        raise ValueError('fusion needs links: the flow between frames')
    if batch < 1:
        raise ValueError(f'batch: expected 1 or more frames, got {batch}')
    last = sequence.frames - 1
    todo = sorted(set(todo))
    # Every frame the window will need, in the order it needs them: what a batch reads ahead.
    needed = sorted({s for t in todo
                     for s in range(max(0, t - radius), min(last, t + radius) + 1)})
    ahead = 0                                    # needed[ahead] is the next frame to compute
    frames, probs, flows = {}, {}, {}
    for t in todo:
        lo, hi = max(0, t - radius), min(last, t + radius)
        for cache in (frames, probs):
            for s in [s for s in cache if s < lo]:
                del cache[s]
        for pair in [p for p in flows if min(p) < lo]:
            del flows[pair]
        while needed[ahead:] and needed[ahead] <= hi:
            chunk = needed[ahead:ahead + batch]
            ahead += len(chunk)
            frames.update((s, sequence.read(s)[0]) for s in chunk)
            # Always ``batch`` frames (the last repeated): the kernels a convolution library
            # picks, and so the last bits of a frame's probabilities, change with the batch
            # size; at a fixed one they depend on the frame alone, so a resumed or sharded
            # run writes the files an unbroken one does.
            stack = np.stack([frames[s] for s in chunk + chunk[-1:] * (batch - len(chunk))])
            probs.update(zip(chunk, teacher.batch_probabilities(stack).unbind(0)))
        neighbours = []
        for s in range(lo, hi + 1):
            if s == t:
                continue
            if (t, s) not in flows:
                flows[(t, s)], flows[(s, t)] = links.both_ways(sequence, t, s, frames[t],
                                                               frames[s])
            neighbours.append((probs[s], flows[(t, s)]))
        yield t, fuse(probs[t], neighbours) if neighbours else probs[t]


def hard_labels(probs: torch.Tensor):
    """(K, H, W) probabilities -> (classes, confidence x 255), both (H, W) uint8 numpy."""
    confidence, classes = probs.max(0)
    confidence = (confidence * 255.0).round().clamp(0, 255).to(torch.uint8)
    return classes.to(torch.uint8).cpu().numpy(), confidence.cpu().numpy().astype(np.uint8)
