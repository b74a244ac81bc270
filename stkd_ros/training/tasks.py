"""
Training tasks: modules whose ``forward(batch)`` returns a dict of losses.

``loss`` is what is optimized (the weighted sum of the terms); every other scalar is a term,
unweighted, and is logged as it is; ``output`` holds the model's output. A task with updates
of its own beyond the model's (a discriminator) builds their optimizers in ``start_training``
and runs them in ``after_step``.
"""

from stkd_ros.data.classes import IGNORE_INDEX
from torch import nn
import torch.nn.functional as nnf


def cross_entropy(logits, labels):
    """Pixel-wise cross-entropy; (N, K, H, W) logits, (N, H, W) labels, 255 ignored."""
    return nnf.cross_entropy(logits, labels, ignore_index=IGNORE_INDEX)


class ModelTask(nn.Module):
    """
    A task around one trained model, and what it needs from the data.

    ``frames_needed`` (1 or 2 per clip), ``learns_from_unlabeled`` (whether clips of
    unlabeled video join each batch) and ``needs_flow`` (whether each clip brings its flow
    t -> t+k and the pixels it can be trusted on) tell the loader what to build.
    ``distribute`` wraps only the model in DistributedDataParallel; ``forward_model`` is the
    model or that wrapper, an alias outside the module tree.
    """

    frames_needed = 1
    learns_from_unlabeled = False
    needs_flow = False

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        object.__setattr__(self, 'forward_model', model)

    def distribute(self, device):
        ids = [device.index] if device.type == 'cuda' else None
        object.__setattr__(self, 'forward_model',
                           nn.parallel.DistributedDataParallel(self.model, device_ids=ids))

    def start_training(self, lr_factor, amp: bool):
        """
        Prepare the task's own updates, once, before the first step (and before a resume).

        lr_factor: step -> the model's learning-rate factor; amp: whether steps run under
        autocast with a gradient scaler.
        """

    def after_step(self) -> dict:
        """Run the task's own updates after the model's step; return scalars to log."""
        return {}

    def training_state(self) -> dict:
        """Return what a resume needs beyond the model and its optimizer (the task's own)."""
        return {}

    def load_training_state(self, state: dict):
        """Restore :meth:`training_state`; called after :meth:`start_training`."""

    def trainable_parameters(self):
        return [p for p in self.model.parameters() if p.requires_grad]


class SupervisedTask(ModelTask):
    """Cross-entropy on the key frame; for the teacher, each branch is supervised too."""

    def __init__(self, model: nn.Module, aux_weight: float = 0.4):
        super().__init__(model)
        self.aux_weight = aux_weight

    def forward(self, batch):
        images, labels = batch['frames'][:, 0], batch['labels'][:, 0]
        out = self.forward_model(images)
        terms = {'ce': cross_entropy(out['logits'], labels)}
        total = terms['ce']
        for branch in ('cnn', 'transformer'):
            if f'{branch}_logits' in out:
                terms[f'ce_{branch}'] = cross_entropy(out[f'{branch}_logits'], labels)
                total = total + self.aux_weight * terms[f'ce_{branch}']
        return {'loss': total, **terms, 'output': out['logits']}
