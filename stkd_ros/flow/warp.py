"""
Backward warping along flow, for images, logits and label maps.

``warp(x1, flow)`` samples ``x1`` at ``p + flow[p]``: with flow from frame 0 to frame 1, the
result is frame 1 brought into frame 0's pixel grid. Samples that fall outside the image are
marked invalid rather than clamped.
"""

from stkd_ros.data.classes import IGNORE_INDEX
from stkd_ros.errors import InputError
import torch
import torch.nn.functional as nnf


def _grid(flow: torch.Tensor) -> torch.Tensor:
    """Return the normalized ``grid_sample`` grid (N, H, W, 2) for flow (N, 2, H, W)."""
    n, _, h, w = flow.shape
    ys, xs = torch.meshgrid(torch.arange(h, device=flow.device, dtype=flow.dtype),
                            torch.arange(w, device=flow.device, dtype=flow.dtype),
                            indexing='ij')
    x = (xs + flow[:, 0]) * (2.0 / max(w - 1, 1)) - 1.0
    y = (ys + flow[:, 1]) * (2.0 / max(h - 1, 1)) - 1.0
    return torch.stack([x, y], dim=-1)


def in_bounds(flow: torch.Tensor) -> torch.Tensor:
    """Bool (N, H, W): pixels whose flow target lies inside the image."""
    grid = _grid(flow)
    return (grid.abs() <= 1.0).all(dim=-1) & torch.isfinite(grid).all(dim=-1)


def warp(x: torch.Tensor, flow: torch.Tensor, mode: str = 'bilinear') -> torch.Tensor:
    """Warp images or logits (N, C, H, W) backward along flow (N, 2, H, W); zeros outside."""
    if x.shape[-2:] != flow.shape[-2:]:
        raise InputError(f'warp: input {tuple(x.shape)} and flow {tuple(flow.shape)} differ in '
                         f'size')
    return nnf.grid_sample(x, _grid(flow.to(x.dtype)), mode=mode, padding_mode='zeros',
                           align_corners=True)


def warp_labels(labels: torch.Tensor, flow: torch.Tensor,
                ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """Warp label maps (N, H, W) with nearest sampling; targets outside get ``ignore_index``."""
    warped = warp(labels[:, None].float(), flow.float(), mode='nearest')[:, 0].round().long()
    return torch.where(in_bounds(flow), warped, torch.full_like(warped, ignore_index))
