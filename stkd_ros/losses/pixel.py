"""Pixel-wise distillation: match the teacher's softened class distribution at every pixel."""

import torch
import torch.nn.functional as nnf


def pixel_kd(student_logits: torch.Tensor, teacher_logits: torch.Tensor,
             temperature: float = 1.0) -> torch.Tensor:
    """
    KL(teacher || student) of the softened distributions, averaged over pixels, times T^2.

    student_logits, teacher_logits: (N, K, H, W). Zero when the two agree; the T^2 factor keeps
    gradient size independent of the temperature (Hinton et al. 2015).
    """
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(f'pixel_kd: student {tuple(student_logits.shape)} and teacher '
                         f'{tuple(teacher_logits.shape)} differ')
    t = temperature
    log_p_s = nnf.log_softmax(student_logits / t, dim=1)
    log_p_t = nnf.log_softmax(teacher_logits.detach() / t, dim=1)
    kl = (log_p_t.exp() * (log_p_t - log_p_s)).sum(dim=1)
    return kl.mean() * t * t
