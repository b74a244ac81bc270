"""
Where flow can be trusted, for one pair of frames in NumPy: the occlusion checks' definitions.

The two checks are defined here once (:func:`consistent`, :func:`colour_kept`) and written so
that they hold for NumPy arrays and torch tensors alike; ``stkd_ros.flow.occlusion`` applies
them to torch batches (training), the ``*_visible`` forms here to one pair of NumPy frames
(the metrics, eval-bag, the flicker monitor, the clip pipeline), with a NumPy bilinear sample
that matches ``grid_sample``'s (test/test_flow.py compares them). No PyTorch here: the
flicker monitor runs without it.
"""

import numpy as np


def consistent(flow_fw, bw_at_target, alpha1: float, alpha2: float, axis: int):
    """
    Test forward-backward consistency: the forward flow and the backward one at its target cancel.

    ``|w_f + w_b|^2 < alpha1 (|w_f|^2 + |w_b|^2) + alpha2``, the vector components along
    ``axis``; the test and its default constants (0.01, 0.5) follow Sundaram, Brox and Keutzer
    (ECCV 2010), as used by ETC (Liu et al. ECCV 2020).
    """
    total = ((flow_fw + bw_at_target) ** 2).sum(axis)
    bound = alpha1 * ((flow_fw ** 2).sum(axis) + (bw_at_target ** 2).sum(axis)) + alpha2
    return total < bound


def colour_kept(img0, img1_warped, threshold: float, axis: int):
    """Test colour constancy: mean absolute difference (images in [0, 1]) below ``threshold``."""
    return abs(img0 - img1_warped).mean(axis) < threshold


def targets(flow: np.ndarray):
    """Return the flow's targets ``p + flow[p]``: x and y, each (H, W) float32."""
    h, w = flow.shape[:2]
    return (flow[..., 0] + np.arange(w, dtype=np.float32),
            flow[..., 1] + np.arange(h, dtype=np.float32)[:, None])


def in_image(flow: np.ndarray) -> np.ndarray:
    """Bool (H, W): pixels whose flow target lies inside the image (NaN is outside)."""
    h, w = flow.shape[:2]
    x, y = targets(flow)
    return (x >= 0) & (x <= w - 1) & (y >= 0) & (y <= h - 1)


def sample(array: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """
    Sample ``array`` (H, W, C) at ``p + flow[p]`` (H, W, 2), bilinear, zeros outside.

    ``grid_sample``'s bilinear sampling with ``align_corners=True`` and zero padding, as
    ``stkd_ros.flow.warp.warp`` does on torch batches: each of the four neighbours outside
    the image counts as zero.
    """
    h, w = flow.shape[:2]
    x, y = targets(flow)
    lost = ~(np.isfinite(x) & np.isfinite(y))
    x[lost] = y[lost] = -2.0   # NaN or infinite flow: all four neighbours outside
    x0, y0 = np.floor(x), np.floor(y)
    fx, fy = x - x0, y - y0
    x0, y0 = x0.astype(np.intp), y0.astype(np.intp)
    flat = array.reshape(h * w, -1)
    out = np.zeros((h * w, flat.shape[1]), np.float32)
    for yi, wy in ((y0, 1.0 - fy), (y0 + 1, fy)):
        wy = np.where((yi >= 0) & (yi < h), wy, 0.0)
        for xi, wx in ((x0, 1.0 - fx), (x0 + 1, fx)):
            weight = np.where((xi >= 0) & (xi < w), wx, 0.0) * wy
            index = np.clip(yi, 0, h - 1) * w + np.clip(xi, 0, w - 1)
            out += np.take(flat, index.ravel(), axis=0) * weight.reshape(-1, 1)
    return out.reshape(flow.shape[:2] + array.shape[2:])


def forward_backward_visible(flow_fw: np.ndarray, flow_bw: np.ndarray, alpha1: float = 0.01,
                             alpha2: float = 0.5) -> np.ndarray:
    """(H, W) bool: pixels visible in both frames, from the (H, W, 2) flows both ways."""
    flow_fw = np.asarray(flow_fw, np.float32)
    bw_at_target = sample(np.asarray(flow_bw, np.float32), flow_fw)
    return consistent(flow_fw, bw_at_target, alpha1, alpha2, -1) & in_image(flow_fw)


def photometric_visible(frame_a: np.ndarray, frame_b: np.ndarray, flow: np.ndarray,
                        threshold: float) -> np.ndarray:
    """(H, W) bool: pixels whose colour survives the warp; HxWx3 uint8 frames, (H, W, 2) flow."""
    flow = np.asarray(flow, np.float32)
    warped = sample(frame_b.astype(np.float32) / 255.0, flow)
    return colour_kept(frame_a.astype(np.float32) / 255.0, warped, threshold, -1) & \
        in_image(flow)
