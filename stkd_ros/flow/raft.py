"""RAFT (Teed and Deng, ECCV 2020) from torchvision, with weights from a local file only."""

from pathlib import Path

import numpy as np
from stkd_ros.errors import InputError
from stkd_ros.flow.base import FlowEstimator
import torch

_ARCHS = ('small', 'large')


class RAFTFlow(FlowEstimator):
    """torchvision's ``raft_small`` / ``raft_large``; weights must be given as a local path."""

    name = 'raft'

    def __init__(self, size: str = 'small', weights: str = None, device: str = 'cpu',
                 iterations: int = 12):
        from torchvision.models.optical_flow import raft_large, raft_small
        if size not in _ARCHS:
            raise InputError(f'unknown RAFT size {size!r}; expected one of {_ARCHS}')
        if not weights:
            raise InputError('RAFT needs its weights as a local file: set weights=PATH (a '
                             'torchvision raft_small/raft_large state dict); nothing is '
                             'downloaded')
        path = Path(weights)
        if not path.is_file():
            raise FileNotFoundError(f'RAFT weights not found: {path}')
        self.size, self.weights, self.device, self.iterations = size, str(path), device, iterations
        self.model = (raft_small if size == 'small' else raft_large)(weights=None)
        state = torch.load(path, map_location='cpu', weights_only=True)
        self.model.load_state_dict(state)
        self.model.eval().to(device)

    def settings(self):
        return {'size': self.size, 'weights': Path(self.weights).name,
                'iterations': self.iterations}

    @torch.no_grad()
    def estimate(self, img0, img1):
        h, w = img0.shape[:2]
        # RAFT needs sides divisible by 8 and at least 128 (its correlation pyramid);
        # pad by replication and crop the result.
        ph, pw = max(128, h + (-h) % 8) - h, max(128, w + (-w) % 8) - w
        batch = []
        for img in (img0, img1):
            t = torch.from_numpy(img).permute(2, 0, 1).float().div(127.5).sub(1.0)[None]
            batch.append(torch.nn.functional.pad(t, (0, pw, 0, ph), mode='replicate'))
        flows = self.model(batch[0].to(self.device), batch[1].to(self.device),
                           num_flow_updates=self.iterations)
        flow = flows[-1][0, :, :h, :w].permute(1, 2, 0)
        return np.ascontiguousarray(flow.cpu().numpy(), dtype=np.float32)
