"""Pixel-wise distillation: match the teacher's softened class distribution at every pixel."""

from typing import Optional

from stkd_ros.data.classes import IGNORE_INDEX
from stkd_ros.losses.reduce import masked_mean
import torch
import torch.nn.functional as nnf


def pixel_kd(student_logits: torch.Tensor, teacher_logits: torch.Tensor,
             temperature: float = 1.0, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
    """
    KL(teacher || student) of the softened distributions, averaged over pixels, times T^2.

    student_logits, teacher_logits: (N, K, H, W); mask: optional (N, H, W) bool, the pixels
    that count. Zero when the two agree; the T^2 factor keeps gradient size independent of the
    temperature (Hinton et al. 2015).
    """
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(f'pixel_kd: student {tuple(student_logits.shape)} and teacher '
                         f'{tuple(teacher_logits.shape)} differ')
    t = temperature
    log_p_s = nnf.log_softmax(student_logits / t, dim=1)
    log_p_t = nnf.log_softmax(teacher_logits.detach() / t, dim=1)
    kl = (log_p_t.exp() * (log_p_t - log_p_s)).sum(dim=1)
    return (kl.mean() if mask is None else masked_mean(kl, mask)) * t * t


def teacher_right(teacher_logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """
    Pixels where the teacher's class is the label's, or that have no label: (N, H, W) bool.

    Where the teacher is wrong on a labeled pixel, its soft target pulls against the label.
    """
    return (labels == IGNORE_INDEX) | (teacher_logits.argmax(dim=1) == labels)
