"""
Where flow can be trusted, on torch batches: the forward-backward and the photometric checks.

The checks are defined once in ``stkd_ros.flow.visible`` (which also applies them to one pair
of NumPy frames, without PyTorch); here they run on (N, ., H, W) batches with
``stkd_ros.flow.warp``, on the device the batch is on (training, the teacher's labels).
"""

from stkd_ros.flow.visible import colour_kept, consistent
from stkd_ros.flow.warp import in_bounds, warp
import torch


def forward_backward_valid(flow_fw: torch.Tensor, flow_bw: torch.Tensor, alpha1: float = 0.01,
                           alpha2: float = 0.5) -> torch.Tensor:
    """Bool (N, H, W): pixels visible in both frames (``stkd_ros.flow.visible.consistent``)."""
    return consistent(flow_fw, warp(flow_bw, flow_fw), alpha1, alpha2, 1) & in_bounds(flow_fw)


def photometric_valid(img0: torch.Tensor, img1: torch.Tensor, flow: torch.Tensor,
                      threshold: float) -> torch.Tensor:
    """Bool (N, H, W): pixels whose colour survives the warp (images in [0, 1], N x 3 x H x W)."""
    return colour_kept(img0, warp(img1, flow), threshold, 1) & in_bounds(flow)
