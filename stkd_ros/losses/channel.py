"""
Channel-wise distillation (CWD, Shu et al. ICCV 2021).

Each class channel of the logits becomes a distribution over the image's positions (a softmax
over H x W), and the student's is matched to the teacher's with a KL divergence. Every class
weighs the same, whatever its area, where pixel-wise distillation weighs each class by the
pixels it covers: a fence or a pole counts as much as the road.
"""

from typing import Optional

from stkd_ros.losses.softened_kl import softened_kl
import torch

#: Logit given to masked positions: no probability left there, for student and teacher alike.
MASKED = -1e4


def channel_kd(student_logits: torch.Tensor, teacher_logits: torch.Tensor,
               temperature: float = 1.0, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
    """
    KL(teacher || student) of each channel's spatial distribution, mean over channels, x T^2.

    student_logits, teacher_logits: (N, K, H, W); mask: optional (N, H, W) bool, the positions
    the distributions spread over (False on crop padding). Zero when each channel of the
    student is the teacher's up to a constant (the spatial softmax ignores a per-channel
    offset).
    """
    if mask is not None:
        outside = ~mask[:, None]
        student_logits = student_logits.masked_fill(outside, MASKED)
        teacher_logits = teacher_logits.masked_fill(outside, MASKED)
    kl = softened_kl(student_logits.flatten(2), teacher_logits.flatten(2), temperature, 2,
                     'channel_kd')                                      # (N, K)
    return kl.mean() * temperature * temperature
