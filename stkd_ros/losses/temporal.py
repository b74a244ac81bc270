"""
Temporal losses between frames t and t+k linked by optical flow.

- ``motion_consistency``: the student's prediction of t+k, warped back to t along the flow,
  should agree with its prediction of t where the pixel is visible in both (ETC, Liu et al.
  ECCV 2020).
- ``temporal_kd``: the student's relation between its own features of t and t+k should match
  the teacher's (temporal knowledge distillation).
"""

from stkd_ros.flow.warp import in_bounds, warp
from stkd_ros.losses.pairwise import node_grid, pooled_nodes, weighted_square_error
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


def temporal_kd(student_t: torch.Tensor, student_next: torch.Tensor, teacher_t: torch.Tensor,
                teacher_next: torch.Tensor, grid=(8, 16), mask: torch.Tensor = None
                ) -> torch.Tensor:
    """
    Match the student's inter-frame relation to the teacher's.

    The relation is the (N, M, M) cosine similarity between the pooled nodes of frame t and
    those of t+k (the grid and the padding ``mask`` as in pair-wise distillation; both frames
    share one crop, so one mask).
    """
    grid = node_grid(grid, student_t, teacher_t)
    s_t, w = pooled_nodes(student_t, grid, mask)
    s_n, _ = pooled_nodes(student_next, grid, mask)
    t_t, _ = pooled_nodes(teacher_t.detach(), grid, mask)
    t_n, _ = pooled_nodes(teacher_next.detach(), grid, mask)
    return weighted_square_error(s_t.transpose(1, 2) @ s_n, t_t.transpose(1, 2) @ t_n, w, w)
