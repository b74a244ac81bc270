"""
Training tasks: modules whose ``forward(batch)`` returns a dict of losses, and their step.

``loss`` is what is optimized (the weighted sum of the terms); every other scalar is a term,
unweighted, and is logged as it is; ``output`` holds the model's output. A task's
``training_step(batch, updates)`` runs one whole step: its forward, the model's update
(``updates['model']``), and any update of its own (a discriminator's, which the task asks for
in ``own_updates``); it returns what to log.
"""

from stkd_ros.data.classes import IGNORE_INDEX
from torch import nn
import torch.nn.functional as nnf


def cross_entropy(logits, labels):
    """Pixel-wise cross-entropy; (N, K, H, W) logits, (N, H, W) labels, 255 ignored."""
    return nnf.cross_entropy(logits, labels, ignore_index=IGNORE_INDEX)


class ModelTask(nn.Module):
    """
    A task around one trained model.

    ``distribute`` wraps only the model in DistributedDataParallel; ``forward_model`` is the
    model or that wrapper, an alias outside the module tree.
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        object.__setattr__(self, 'forward_model', model)

    def distribute(self, device):
        ids = [device.index] if device.type == 'cuda' else None
        object.__setattr__(self, 'forward_model',
                           nn.parallel.DistributedDataParallel(self.model, device_ids=ids))

    def trainable_parameters(self):
        return [p for p in self.model.parameters() if p.requires_grad]

    def own_updates(self, make_update) -> dict:
        """
        Return the task's updates beyond the model's, by name.

        make_update: optimizer -> an :class:`~stkd_ros.training.updates.Update` on the run's
        learning-rate schedule and precision.
        """
        return {}

    def training_step(self, batch, updates: dict) -> dict:
        """Compute the losses of ``batch`` and update the model; return them."""
        update = updates['model']
        with update.autocast():
            losses = self(batch)
        update.step(losses['loss'])
        return losses

    def training_state(self) -> dict:
        """Return the task's own modules' state (beyond the model) that a resume needs."""
        return {}

    def load_training_state(self, state: dict):
        """Restore :meth:`training_state`."""


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
