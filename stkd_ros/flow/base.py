"""
One interface for every flow method, and the factory that builds them from settings.

Convention used everywhere in the package: ``flow = estimator(img0, img1)`` is an HxWx2
float32 array (x, y in pixels) such that ``img0[p] ~ img1[p + flow[p]]``; warping ``img1``
backward along it gives an image aligned with ``img0``.
"""

from typing import Dict

import numpy as np
from stkd_ros.errors import InputError


def _check_pair(img0: np.ndarray, img1: np.ndarray):
    if img0.shape != img1.shape or img0.ndim != 3 or img0.shape[2] != 3:
        raise InputError(f'flow needs two HxWx3 frames of one size, got {img0.shape} and '
                         f'{img1.shape}')


class FlowEstimator:
    """
    Base class: ``estimate`` two RGB uint8 frames; ``settings`` key the flow cache.

    ``estimate_both`` may share work between the two directions (OpenCV's gray frames).
    """

    name = 'base'

    def estimate(self, img0: np.ndarray, img1: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def settings(self) -> Dict[str, object]:
        return {}

    def estimate_both(self, img0: np.ndarray, img1: np.ndarray):
        return self.estimate(img0, img1), self.estimate(img1, img0)

    def __call__(self, img0: np.ndarray, img1: np.ndarray) -> np.ndarray:
        _check_pair(img0, img1)
        return self.estimate(img0, img1)

    def both_ways(self, img0: np.ndarray, img1: np.ndarray):
        """Flow img0 -> img1 and img1 -> img0, for the forward-backward occlusion check."""
        _check_pair(img0, img1)
        return self.estimate_both(img0, img1)

    def between(self, clip, i: int, j: int) -> np.ndarray:
        """Flow from frame i to frame j of a :class:`~stkd_ros.data.clip.Clip`."""
        return self(clip.frames[i], clip.frames[j])

    def key(self) -> str:
        """Return a stable string naming the method and its settings."""
        parts = [f'{k}={v}' for k, v in sorted(self.settings().items())]
        return ','.join([self.name] + parts)


def _dis(**settings):
    from stkd_ros.flow.opencv_flow import DISFlow
    return DISFlow(**settings)


def _farneback(**settings):
    from stkd_ros.flow.opencv_flow import FarnebackFlow
    return FarnebackFlow(**settings)


def _raft(**settings):
    from stkd_ros.flow.raft import RAFTFlow
    return RAFTFlow(**settings)


def _ground_truth(**settings):
    from stkd_ros.flow.ground_truth import GroundTruthFlow
    return GroundTruthFlow(**settings)


#: Method name -> builder. A plain dict: what exists is what is listed here.
FLOW_METHODS = {
    'dis': _dis,
    'farneback': _farneback,
    'raft': _raft,
    'ground_truth': _ground_truth,
}


def build_flow(method: str = 'dis', **settings) -> FlowEstimator:
    """Build a flow estimator by name (``dis``, ``farneback``, ``raft``, ``ground_truth``)."""
    if method not in FLOW_METHODS:
        raise InputError(f'unknown flow method {method!r}; expected one of '
                         f'{sorted(FLOW_METHODS)}')
    return FLOW_METHODS[method](**settings)
