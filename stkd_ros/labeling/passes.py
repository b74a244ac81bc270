"""
The teacher's class probabilities for one frame, with test-time augmentation.

One pass per scale of the model's input size, each also mirrored when ``flip`` is on; every
pass goes through ``stkd_ros.inference.model_input`` (the one preprocessing, with the model
file's mean and std), and its softmax is resized to the frame's size (bilinear) and averaged.
A frame is processed alone, so its probabilities do not depend on which frames share a batch:
a resumed or sharded labeling writes the same files as one unbroken run.
"""

from typing import Sequence

import numpy as np
from stkd_ros.errors import InputError
from stkd_ros.inference import model_input
import torch
import torch.nn.functional as nnf


class TeacherPasses:
    """``probabilities(frame)``: (K, H, W) float32 on ``device``, averaged over the passes."""

    def __init__(self, model: torch.nn.Module, meta: dict, *, scales: Sequence[float] = (1.0,),
                 flip: bool = False, device='cpu'):
        self.model, self.device = model.eval(), torch.device(device)
        self.mean, self.std = meta['mean'], meta['std']
        h, w = meta['input_size']
        self.sizes = [(max(1, round(h * s)), max(1, round(w * s))) for s in scales]
        self.flip = flip
        self._check_sizes(scales)

    @torch.inference_mode()
    def _check_sizes(self, scales):
        """Stop in one line, before any frame, at a scale the model cannot run at."""
        for scale, size in zip(scales, self.sizes):
            try:
                self.model(torch.zeros((1, 3) + size, device=self.device))
            except RuntimeError as exc:
                raise InputError(f'label.scales: the teacher cannot run at scale {scale} '
                                 f'({size[0]}x{size[1]}): {str(exc).splitlines()[0]}') from None

    @property
    def passes(self) -> int:
        return len(self.sizes) * (2 if self.flip else 1)

    @torch.inference_mode()
    def probabilities(self, frame: np.ndarray) -> torch.Tensor:
        out_size = frame.shape[:2]
        total = None
        for size in self.sizes:
            x = torch.from_numpy(model_input(frame[None], size, self.mean, self.std))
            x = x.to(self.device)
            if self.flip:
                x = torch.cat([x, x.flip(-1)])
            probs = self.model(x)['logits'].float().softmax(1)
            if self.flip:
                probs = torch.stack([probs[0], probs[1].flip(-1)])
            if tuple(probs.shape[-2:]) != out_size:
                probs = nnf.interpolate(probs, size=out_size, mode='bilinear',
                                        align_corners=False)
            summed = probs.sum(0)
            total = summed if total is None else total + summed
        return total / self.passes
