"""Pixel-wise distillation: match the teacher's softened class distribution at every pixel."""

from typing import Optional

from stkd_ros.losses.reduce import masked_mean
from stkd_ros.losses.softened_kl import softened_kl
import torch


def pixel_kd(student_logits: torch.Tensor, teacher_logits: torch.Tensor,
             temperature: float = 1.0, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
    """
    KL(teacher || student) of the softened distributions, averaged over pixels, times T^2.

    student_logits, teacher_logits: (N, K, H, W); mask: optional (N, H, W) bool, the pixels
    that count (False on crop padding). Zero when the two agree; the T^2 factor keeps
    gradient size independent of the temperature (Hinton et al. 2015).
    """
    kl = softened_kl(student_logits, teacher_logits, temperature, 1, 'pixel_kd')   # (N, H, W)
    return (kl.mean() if mask is None else masked_mean(kl, mask)) * temperature * temperature
