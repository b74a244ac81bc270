"""
Pair-wise (structured) distillation, after SKD (Liu et al. CVPR 2019).

Feature maps are pooled to a grid of nodes; the affinity between two nodes is the cosine
similarity of their feature vectors. Student and teacher affinity matrices are matched, which
transfers how the teacher relates regions to each other, whatever the channel counts.

The grid is never finer than either feature map (SKD pools to coarse nodes): a finer grid
would interpolate the student's map up while pooling the teacher's down, and the target could
not be reached. A ``mask`` of the image's real pixels (False on crop padding) keeps padding
out of every node; nodes with no real pixel drop out of the comparison.
"""

from typing import Optional, Tuple

import torch
import torch.nn.functional as nnf


def node_grid(grid, *features: torch.Tensor) -> Tuple[int, int]:
    """Return ``grid`` (h, w) capped at the size of the coarsest of ``features``."""
    return (min([grid[0]] + [f.shape[-2] for f in features]),
            min([grid[1]] + [f.shape[-1] for f in features]))


def pooled_nodes(features: torch.Tensor, grid, mask: Optional[torch.Tensor] = None):
    """
    Pool (N, C, H, W) features to (N, C, M) unit node vectors and (N, M) node weights.

    mask: optional (N, H', W') bool at any resolution; a node's vector is the mean of its
    real pixels and its weight the share of them (0: no real pixel).
    """
    if mask is None:
        nodes = nnf.adaptive_avg_pool2d(features, grid)
        weight = torch.ones_like(nodes[:, 0])
    else:
        m = nnf.adaptive_avg_pool2d(mask[:, None].to(features.dtype), features.shape[-2:])
        weight = nnf.adaptive_avg_pool2d(m, grid)[:, 0]
        nodes = nnf.adaptive_avg_pool2d(features * m, grid) / weight[:, None].clamp(min=1e-6)
    return nnf.normalize(nodes.flatten(2), dim=1), (weight > 0).flatten(1).to(features.dtype)


def weighted_square_error(a: torch.Tensor, b: torch.Tensor, w_rows: torch.Tensor,
                          w_cols: torch.Tensor) -> torch.Tensor:
    """Mean of (a - b)^2 over (N, M, M) entries whose row and column nodes both count."""
    w = w_rows[:, :, None] * w_cols[:, None, :]
    return ((a - b).pow(2) * w).sum() / w.sum().clamp(min=1.0)


def pairwise_kd(student_features: torch.Tensor, teacher_features: torch.Tensor,
                grid=(8, 16), mask: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Mean squared difference of the student's and the teacher's affinity matrices."""
    grid = node_grid(grid, student_features, teacher_features)
    s, w = pooled_nodes(student_features, grid, mask)
    t, _ = pooled_nodes(teacher_features.detach(), grid, mask)
    return weighted_square_error(s.transpose(1, 2) @ s, t.transpose(1, 2) @ t, w, w)
