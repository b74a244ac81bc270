"""
Temporal fusion: a frame's probabilities averaged with its neighbours' warped along the flow.

For frame t and a neighbour s, the flow t -> s says where each pixel of t is seen in s;
warping s's probabilities back along it (bilinear) aligns them with t. A neighbour's pixel
counts only where the flow passes the occlusion check: forward-backward consistency with
estimated flow (DIS, RAFT), colour constancy with the synthetic world's exact flow (which
has no backward field here). Each pixel is the mean over the frames that count there, t
itself always among them, so a pixel no neighbour sees keeps t's own probabilities.
"""

from typing import Iterable, Tuple

import numpy as np
from stkd_ros.flow.base import FlowEstimator
from stkd_ros.flow.occlusion import forward_backward_valid, photometric_valid
from stkd_ros.flow.warp import warp
import torch

#: Colour-constancy threshold for exact flow: the one ``stkd evaluate`` uses for it.
PHOTOMETRIC_THRESHOLD = 0.08

#: (flow (1, 2, H, W) from t to s, bool (H, W) where it can be trusted)
Link = Tuple[torch.Tensor, torch.Tensor]


def fuse(probs: torch.Tensor, neighbours: Iterable[Tuple[torch.Tensor, Link]]) -> torch.Tensor:
    """
    Average (K, H, W) ``probs`` of frame t with each neighbour's, warped to t where valid.

    ``neighbours`` holds (probabilities (K, H, W) of frame s, (flow t -> s, valid)).
    """
    total, count = probs.clone(), torch.ones(probs.shape[-2:], device=probs.device)
    for other, (flow, valid) in neighbours:
        warped = warp(other[None], flow.to(other.dtype))[0]
        weight = valid.to(probs.dtype)
        total += warped * weight
        count += weight
    return total / count


def _tensor(flow: np.ndarray, device) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(flow, np.float32)).permute(2, 0, 1)[None].to(
        device)


class EstimatedLinks:
    """Flow both ways between two frames from an estimator, checked forward-backward."""

    oracle = False

    def __init__(self, estimator: FlowEstimator, device='cpu'):
        self.estimator, self.device = estimator, torch.device(device)

    def both_ways(self, sequence, t: int, s: int, frame_t: np.ndarray,
                  frame_s: np.ndarray) -> Tuple[Link, Link]:
        """((flow t -> s, valid at t), (flow s -> t, valid at s))."""
        fw = _tensor(self.estimator(frame_t, frame_s), self.device)
        bw = _tensor(self.estimator(frame_s, frame_t), self.device)
        return (fw, forward_backward_valid(fw, bw)[0]), (bw, forward_backward_valid(bw, fw)[0])


class ExactLinks:
    """The synthetic world's exact flow both ways, checked by colour constancy (an oracle)."""

    oracle = True

    def __init__(self, device='cpu', threshold: float = PHOTOMETRIC_THRESHOLD):
        self.device, self.threshold = torch.device(device), threshold

    def both_ways(self, sequence, t: int, s: int, frame_t: np.ndarray,
                  frame_s: np.ndarray) -> Tuple[Link, Link]:
        images = [torch.from_numpy(f).permute(2, 0, 1)[None].float().div(255).to(self.device)
                  for f in (frame_t, frame_s)]
        links = []
        for (a, b), (img_a, img_b) in (((t, s), images), ((s, t), images[::-1])):
            flow = _tensor(sequence.source.exact_flow(sequence.name, a, b), self.device)
            links.append((flow, photometric_valid(img_a, img_b, flow, self.threshold)[0]))
        return links[0], links[1]
