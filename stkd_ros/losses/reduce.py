"""Reduction shared by the losses that count only some pixels."""

import torch


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """
    Mean of (N, H, W) ``values`` over the pixels where ``mask`` is set; 0 if none is.

    A float ``mask`` weights each pixel instead.
    """
    mask = mask.to(values.dtype)
    return (values * mask).sum() / mask.sum().clamp(min=1.0)
