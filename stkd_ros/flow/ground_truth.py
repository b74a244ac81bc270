"""The exact flow that the synthetic world renders with each clip."""

import numpy as np
from stkd_ros.errors import InputError
from stkd_ros.flow.base import FlowEstimator


class GroundTruthFlow(FlowEstimator):
    """Reads flow carried by the clip; only clips from the synthetic world have it."""

    name = 'ground_truth'

    def estimate(self, img0, img1):
        raise InputError('ground-truth flow comes with a clip, not from two images: '
                         'use between(clip, i, j) on a synthetic clip')

    def between(self, clip, i: int, j: int) -> np.ndarray:
        if clip.flows is None:
            raise InputError(f'clip {clip.name!r} carries no ground-truth flow; only the '
                             f'synthetic world has it (use flow method "dis" or "raft")')
        if j != i + 1:
            raise InputError(f'ground-truth flow is stored between consecutive clip frames, '
                             f'not {i} -> {j}')
        return clip.flows[i]
