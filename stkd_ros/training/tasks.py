"""
Training tasks: modules whose ``forward(batch)`` returns a dict of losses.

``loss`` is what is optimized; every other scalar is logged as it is; ``output`` holds the
model's output for sample overlays.
"""

from stkd_ros.data.classes import IGNORE_INDEX
from torch import nn
import torch.nn.functional as nnf


def cross_entropy(logits, labels):
    """Pixel-wise cross-entropy; (N, K, H, W) logits, (N, H, W) labels, 255 ignored."""
    return nnf.cross_entropy(logits, labels, ignore_index=IGNORE_INDEX)


class SupervisedTask(nn.Module):
    """Cross-entropy on the key frame; for the teacher, each branch is supervised too."""

    frames_needed = 1

    def __init__(self, model: nn.Module, aux_weight: float = 0.4):
        super().__init__()
        self.model, self.aux_weight = model, aux_weight

    def forward(self, batch):
        images, labels = batch['frames'][:, 0], batch['labels'][:, 0]
        out = self.model(images)
        losses = {'ce': cross_entropy(out['logits'], labels)}
        total = losses['ce']
        for branch in ('cnn', 'transformer'):
            if f'{branch}_logits' in out:
                losses[f'ce_{branch}'] = cross_entropy(out[f'{branch}_logits'], labels)
                total = total + self.aux_weight * losses[f'ce_{branch}']
        return {'loss': total, **losses, 'output': out['logits']}
