"""Where flow can be trusted: forward-backward consistency and photometric checks."""

from stkd_ros.flow.warp import in_bounds, warp
import torch


def forward_backward_valid(flow_fw: torch.Tensor, flow_bw: torch.Tensor, alpha1: float = 0.01,
                           alpha2: float = 0.5) -> torch.Tensor:
    """
    Bool (N, H, W): pixels visible in both frames.

    The forward flow and the backward flow sampled at its target should cancel; the test
    ``|w_f + w_b|^2 < alpha1 (|w_f|^2 + |w_b|^2) + alpha2`` and its default constants follow
    Sundaram, Brox and Keutzer (ECCV 2010), as used by ETC (Liu et al. ECCV 2020).
    """
    bw_at_target = warp(flow_bw, flow_fw)
    total = (flow_fw + bw_at_target).pow(2).sum(1)
    bound = alpha1 * (flow_fw.pow(2).sum(1) + bw_at_target.pow(2).sum(1)) + alpha2
    return (total < bound) & in_bounds(flow_fw)


def photometric_valid(img0: torch.Tensor, img1: torch.Tensor, flow: torch.Tensor,
                      threshold: float = 0.1) -> torch.Tensor:
    """Bool (N, H, W): pixels whose colour survives the warp (images in [0, 1], N x 3 x H x W)."""
    diff = (img0 - warp(img1, flow)).abs().mean(1)
    return (diff < threshold) & in_bounds(flow)
