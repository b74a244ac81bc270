"""
The teacher's class probabilities for frames, with test-time augmentation.

One pass per scale of the model's input size, each also mirrored when ``flip`` is on; every
pass goes through ``stkd_ros.inference.model_input`` (the one preprocessing, with the model
file's mean and std), and its softmax is resized to the frame's size (bilinear) and averaged.
Frames of one size go through the teacher together (``batch_probabilities``); a frame's
probabilities do not depend on the other frames of its batch, only (in their last bits, as
the convolution library's kernels change with it) on the batch's size. The forward runs at
``precision`` (stkd_ros/teacher_precision.py), its probabilities float32 either way.
"""

from typing import Sequence

import numpy as np
from stkd_ros.errors import InputError
from stkd_ros.inference import model_input
from stkd_ros.teacher_precision import resolve_precision, teacher_forward
import torch
import torch.nn.functional as nnf


class TeacherPasses:
    """
    ``probabilities(frame)``: (K, H, W) float32 on ``device``, averaged over the passes.

    ``precision``: the teacher's forward's, 'auto', 'fp32' or 'bf16'; ``self.precision`` is
    the one it runs at (auto resolved on ``device``), what a store records.
    """

    def __init__(self, model: torch.nn.Module, meta: dict, *, scales: Sequence[float] = (1.0,),
                 flip: bool = False, device='cpu', precision: str = 'fp32'):
        self.model, self.device = model.eval(), torch.device(device)
        self.precision = resolve_precision(precision, self.device)
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

    def probabilities(self, frame: np.ndarray) -> torch.Tensor:
        """(H, W, 3) uint8 RGB -> (K, H, W) float32 probabilities."""
        return self.batch_probabilities(frame[None])[0]

    @torch.inference_mode()
    def batch_probabilities(self, frames: np.ndarray) -> torch.Tensor:
        """(N, H, W, 3) uint8 RGB frames of one size -> (N, K, H, W) float32 probabilities."""
        n, out_size = len(frames), frames.shape[1:3]
        total = None
        for size in self.sizes:
            x = torch.from_numpy(model_input(frames, size, self.mean, self.std)).to(self.device)
            if self.flip:
                x = torch.cat([x, x.flip(-1)])
            probs = teacher_forward(self.model, x, self.precision)['logits'].softmax(1)
            if self.flip:
                probs = torch.cat([probs[:n], probs[n:].flip(-1)])
            if tuple(probs.shape[-2:]) != out_size:
                probs = nnf.interpolate(probs, size=out_size, mode='bilinear',
                                        align_corners=False)
            # (passes of this scale, N, K, H, W), summed over the passes
            summed = probs.unflatten(0, (-1, n)).sum(0)
            total = summed if total is None else total + summed
        return total / self.passes
