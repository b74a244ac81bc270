"""
Temporal losses between frames t and t+k linked by optical flow.

- ``motion_consistency``: the student's prediction of t+k, warped back to t along the flow,
  should agree with its prediction of t where the pixel is visible in both (ETC, Liu et al.
  ECCV 2020).
- ``temporal_kd``: the student's relation between its own features of t and t+k should match
  the teacher's (temporal knowledge distillation).
"""

from stkd_ros.flow.warp import in_bounds, warp
from stkd_ros.losses.pairwise import affinity
from stkd_ros.losses.reduce import masked_mean
import torch
import torch.nn.functional as nnf


def motion_consistency(logits_t: torch.Tensor, logits_next: torch.Tensor, flow: torch.Tensor,
                       valid: torch.Tensor = None) -> torch.Tensor:
    """
    Squared L2 distance between the class distributions of t and of t+k warped back to t.

    logits_t, logits_next: (N, K, H, W); flow: (N, 2, H, W) from t to t+k; valid: optional
    (N, H, W) bool occlusion mask. Pixels whose flow leaves the image never count. The
    distance is summed over classes (0 .. 2 per pixel) and averaged over counted pixels.
    """
    p_t = nnf.softmax(logits_t, dim=1)
    p_next = warp(nnf.softmax(logits_next, dim=1), flow)
    mask = in_bounds(flow)
    if valid is not None:
        mask = mask & valid
    return masked_mean((p_t - p_next).pow(2).sum(dim=1), mask)


def cross_frame_affinity(feat_t: torch.Tensor, feat_next: torch.Tensor, grid) -> torch.Tensor:
    """(N, M, M) cosine similarities between the pooled nodes of frame t and of t+k."""
    a = nnf.normalize(nnf.adaptive_avg_pool2d(feat_t, grid).flatten(2), dim=1)
    b = nnf.normalize(nnf.adaptive_avg_pool2d(feat_next, grid).flatten(2), dim=1)
    return a.transpose(1, 2) @ b


def temporal_kd(student_t: torch.Tensor, student_next: torch.Tensor, teacher_t: torch.Tensor,
                teacher_next: torch.Tensor, grid=(8, 16)) -> torch.Tensor:
    """Match the student's inter-frame relation (cross-frame affinity) to the teacher's."""
    rel_s = cross_frame_affinity(student_t, student_next, grid)
    rel_t = cross_frame_affinity(teacher_t.detach(), teacher_next.detach(), grid)
    return (rel_s - rel_t).pow(2).mean()


__all__ = ['affinity', 'cross_frame_affinity', 'motion_consistency', 'temporal_kd']
