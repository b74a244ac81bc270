"""
Pair-wise (structured) distillation, after SKD (Liu et al. CVPR 2019).

Feature maps are pooled to a grid of nodes; the affinity between two nodes is the cosine
similarity of their feature vectors. Student and teacher affinity matrices are matched, which
transfers how the teacher relates regions to each other, whatever the channel counts.
"""

import torch
import torch.nn.functional as nnf


def affinity(features: torch.Tensor, grid) -> torch.Tensor:
    """(N, C, H, W) -> (N, M, M) cosine similarities between the M = gh * gw pooled nodes."""
    nodes = nnf.adaptive_avg_pool2d(features, grid).flatten(2)      # (N, C, M)
    nodes = nnf.normalize(nodes, dim=1)
    return nodes.transpose(1, 2) @ nodes


def pairwise_kd(student_features: torch.Tensor, teacher_features: torch.Tensor,
                grid=(8, 16)) -> torch.Tensor:
    """Mean squared difference of the student's and the teacher's affinity matrices."""
    a_s = affinity(student_features, grid)
    a_t = affinity(teacher_features.detach(), grid)
    return (a_s - a_t).pow(2).mean()
