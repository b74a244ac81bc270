"""
The teacher's predictions of frames t and t+k, brought together along the flow t -> t+k.

Online targets that use the video's time without a penalty on the student's own outputs:
the world is steady where it is seen in both frames, so the teacher's two views of a point
should name one class (fused targets), and a term that pulls the student's t and t+k together
should pull only where the teacher is sure or agrees with itself along the flow (gates).
"""

from stkd_ros.data.classes import IGNORE_INDEX
from stkd_ros.flow.warp import warp, warp_labels
import torch
import torch.nn.functional as nnf


def fused_classes(logits_t: torch.Tensor, logits_next: torch.Tensor, flow: torch.Tensor,
                  visible: torch.Tensor) -> torch.Tensor:
    """
    Return frame t's classes (N, H, W) from the teacher's probabilities of t and of t+k.

    On the ``visible`` pixels (seen in both frames) the two views' probabilities are summed,
    t+k's warped into t's grid along ``flow`` (N, 2, H, W); elsewhere t's own view decides.
    A sum, not a product: one view that is sure outweighs one that hesitates, and two views
    that disagree surely leave the class of the surer one.
    """
    p_t = nnf.softmax(logits_t.float(), 1)
    p_next = warp(nnf.softmax(logits_next.float(), 1), flow.float())
    fused = torch.where(visible[:, None], p_t + p_next, p_t)
    return fused.argmax(1)


def kept_by_gate(kind: str, classes_t: torch.Tensor, classes_next: torch.Tensor,
                 confidence_t: torch.Tensor, flow: torch.Tensor, threshold: float) -> torch.Tensor:
    """
    Return the pixels (N, H, W) of frame t a gate keeps, whoever labeled the frames.

    ``confidence``: ``confidence_t`` is at least ``threshold``. ``agreement``: the classes of
    t and of t+k (warped along ``flow``) are the same, and a class (not ``IGNORE_INDEX``).
    """
    if kind == 'confidence':
        return confidence_t >= threshold
    if kind == 'agreement':
        carried = warp_labels(classes_next, flow)
        return (classes_t == carried) & (carried != IGNORE_INDEX)
    raise ValueError(f'temporal gate: no gate {kind!r}')


def teacher_gate(kind: str, logits_t: torch.Tensor, logits_next: torch.Tensor,
                 flow: torch.Tensor, threshold: float) -> torch.Tensor:
    """Return the pixels (N, H, W) of frame t the teacher vouches for (``kept_by_gate``)."""
    confidence_t = nnf.softmax(logits_t.float(), 1).amax(1)
    return kept_by_gate(kind, logits_t.argmax(1), logits_next.argmax(1), confidence_t, flow,
                        threshold)
