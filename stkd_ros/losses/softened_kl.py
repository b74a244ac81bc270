"""The KL divergence between softened distributions, shared by the logit distillation terms."""

from stkd_ros.errors import InputError
import torch
import torch.nn.functional as nnf


def softened_kl(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float,
                dim: int, term: str) -> torch.Tensor:
    """
    KL(teacher || student) of softmax(logits / T) along ``dim``, summed over it, not scaled.

    The teacher is detached. ``term`` names the caller in the shape error.
    """
    if student_logits.shape != teacher_logits.shape:
        raise InputError(f'{term}: student {tuple(student_logits.shape)} and teacher '
                         f'{tuple(teacher_logits.shape)} differ')
    log_p_s = nnf.log_softmax(student_logits / temperature, dim=dim)
    log_p_t = nnf.log_softmax(teacher_logits.detach() / temperature, dim=dim)
    return (log_p_t.exp() * (log_p_t - log_p_s)).sum(dim=dim)
