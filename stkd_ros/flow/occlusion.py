"""
Where flow can be trusted: the forward-backward and the photometric occlusion checks.

One implementation each, in torch on batches; the ``*_visible`` forms take and give NumPy
arrays of one frame pair, for the metrics and the data pipeline.
"""

import numpy as np
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
                      threshold: float) -> torch.Tensor:
    """Bool (N, H, W): pixels whose colour survives the warp (images in [0, 1], N x 3 x H x W)."""
    diff = (img0 - warp(img1, flow)).abs().mean(1)
    return (diff < threshold) & in_bounds(flow)


def _flow(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(array, np.float32)).permute(2, 0, 1)[None]


def _image(frame: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(frame)).permute(2, 0, 1)[None].float() / 255.0


def forward_backward_visible(flow_fw: np.ndarray, flow_bw: np.ndarray) -> np.ndarray:
    """:func:`forward_backward_valid` of one pair: (H, W, 2) flows -> (H, W) bool."""
    return forward_backward_valid(_flow(flow_fw), _flow(flow_bw))[0].numpy()


def photometric_visible(frame_a: np.ndarray, frame_b: np.ndarray, flow: np.ndarray,
                        threshold: float) -> np.ndarray:
    """:func:`photometric_valid` of one pair: HxWx3 uint8 frames, (H, W, 2) flow -> (H, W)."""
    return photometric_valid(_image(frame_a), _image(frame_b), _flow(flow), threshold)[0].numpy()
