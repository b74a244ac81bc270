"""
Channel-wise distillation (CWD, Shu et al. ICCV 2021).

Each class channel of the logits becomes a distribution over the image's positions (a softmax
over H x W), and the student's is matched to the teacher's with a KL divergence. Every class
weighs the same, whatever its area, where pixel-wise distillation weighs each class by the
pixels it covers: a fence or a pole counts as much as the road.
"""

import torch
import torch.nn.functional as nnf


def channel_kd(student_logits: torch.Tensor, teacher_logits: torch.Tensor,
               temperature: float = 1.0) -> torch.Tensor:
    """
    KL(teacher || student) of each channel's spatial distribution, mean over channels, x T^2.

    student_logits, teacher_logits: (N, K, H, W). Zero when each channel of the student is the
    teacher's up to a constant (the spatial softmax ignores a per-channel offset).
    """
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(f'channel_kd: student {tuple(student_logits.shape)} and teacher '
                         f'{tuple(teacher_logits.shape)} differ')
    t = temperature
    log_p_s = nnf.log_softmax(student_logits.flatten(2) / t, dim=2)     # (N, K, H*W)
    log_p_t = nnf.log_softmax(teacher_logits.detach().flatten(2) / t, dim=2)
    kl = (log_p_t.exp() * (log_p_t - log_p_s)).sum(dim=2)             # (N, K)
    return kl.mean() * t * t
