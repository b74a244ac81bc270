"""
Spatial-temporal consistency distillation as a task.

A frozen teacher, a student, and a discriminator that judges pairs of consecutive predictions.

One step (:meth:`DistillationTask.training_step`) runs the student on frames t and t+k
together and the teacher under ``no_grad``, updates the student on the weighted sum of the
terms, then updates the discriminator on the teacher's (real) and the student's (fake) pairs
it just made, detached, so the discriminator's update never moves the student. The returned
dict holds every term unweighted beside the weighted total, so ``metrics.csv`` compares
across weight sweeps.
"""

from stkd_ros.config import DistillConfig
from stkd_ros.data.classes import IGNORE_INDEX
from stkd_ros.losses.adversarial import discriminator_loss, generator_loss
from stkd_ros.losses.pairwise import pairwise_kd
from stkd_ros.losses.pixel import pixel_kd
from stkd_ros.losses.temporal import motion_consistency, temporal_kd
from stkd_ros.models.discriminator import PairDiscriminator
from stkd_ros.teacher_precision import teacher_forward
from stkd_ros.training.tasks import cross_entropy, ModelTask
from stkd_ros.training.teacher_along_flow import fused_classes, kept_by_gate
from stkd_ros.training.teacher_along_flow import teacher_gate
import torch
from torch import nn
import torch.nn.functional as nnf


class DistillationTask(ModelTask):
    """
    Distill ``student`` from the frozen ``teacher`` with the terms ``cfg.weights`` switches on.

    The teacher is a registered submodule (it moves with the task), frozen and in eval mode;
    it is in no optimizer, and neither in DDP (which wraps the student alone) nor in
    checkpoints (the trainer saves the student and :meth:`training_state`). With
    ``store_targets`` the unlabeled frames' classes come with the batch from a label store
    (``targets``), labeled once and offline; without, the teacher labels every view online.
    ``teacher_precision`` ('fp32' or 'bf16', resolved: stkd_ros/teacher_precision.py) is
    the teacher's forward's; its outputs reach the losses as float32 either way.
    """

    def __init__(self, student: nn.Module, teacher: nn.Module, num_classes: int,
                 cfg: DistillConfig, store_targets: bool = False,
                 teacher_precision: str = 'fp32'):
        super().__init__(student)
        self.cfg = cfg
        self.teacher_precision = teacher_precision
        w = cfg.weights
        self.store_targets = store_targets
        # All terms but cross-entropy, the student's own consistency and the store's classes
        # need the teacher; a temporal gate without a store reads the teacher's view.
        self.uses_teacher = any((w.pixel, w.pairwise, w.temporal_kd, w.adversarial,
                                 w.pseudo_label and not store_targets,
                                 w.temporal and cfg.temporal_gate != 'none'
                                 and not store_targets))
        self.teacher = teacher.eval().requires_grad_(False)
        self.discriminator = PairDiscriminator(num_classes) if w.adversarial > 0 else None

    def train(self, mode: bool = True):
        super().train(mode)
        self.teacher.eval()
        return self

    def training_step(self, batch, updates: dict) -> dict:
        """
        Update the student on the losses of ``batch``, then the discriminator; return the log.

        ``updates['model']`` steps the student; ``updates['discriminator']`` (from
        :meth:`own_updates`) the discriminator, on the pairs the student's losses judged.
        """
        student = updates['model']
        with student.autocast():
            losses, pairs = self.losses(batch)
        student.step(losses['loss'])
        if self.discriminator is None:
            return losses
        critic, judge = updates['discriminator'], self.discriminator
        lr = critic.lr()
        real, fake = (pair.detach() for pair in pairs)
        with critic.autocast():
            d_loss = discriminator_loss(judge(real), judge(fake))
        # The discriminator is outside DDP: its gradients are averaged over the ranks here.
        critic.step(d_loss, average=judge.parameters())
        return {**losses, 'd_loss': d_loss.detach(), 'd_lr': torch.tensor(lr)}

    def own_updates(self, make_update) -> dict:
        """Return the discriminator's Adam (SKD's betas) on the student's rate factor."""
        if self.discriminator is None:
            return {}
        # The discriminator follows the student's schedule (as in SKD's training script); at
        # a constant rate it overpowers the decaying student late in training.
        adam = torch.optim.Adam(self.discriminator.parameters(),
                                lr=self.cfg.discriminator.lr, betas=(0.5, 0.999))
        return {'discriminator': make_update(adam)}

    def forward(self, batch):
        """Return the losses of ``batch`` (:meth:`losses`)."""
        return self.losses(batch)[0]

    def losses(self, batch):
        """
        Return the losses of ``batch`` and the pairs the discriminator judged in them.

        The pairs are the teacher's and the student's (frame t, frame t+k) predictions, (real,
        fake), or None without a discriminator.

        batch: ``frames`` (N, T, 3, H, W) normalized frames t and t+k (T = 2), or frame t
        alone (T = 1) when no term compares frames; ``labels`` (N, T, H, W), 255 where a
        frame has no label; ``flows`` (N, 1, 2, H, W) from t to t+k and ``visible`` (N, H, W),
        the pixels seen in both frames by the photometric check, when the temporal term is
        on; ``valid`` (N, H, W), False on crop padding, which no term treats as image (every
        pixel counts without it); with a label store, ``targets`` (N, T, H, W) its classes
        (255 on labeled clips and padding) and ``confidence`` (N, T, H, W) in [0, 1]
        (training/data_needs.py says which a config's batches bring).

        The dict holds ``loss`` (the sum of each weight times its term, what is optimized),
        one unweighted entry per term switched on, named after its weight in
        ``distill.weights`` but the distillation terms: ``ce``, ``pseudo_label``,
        ``kd_pixel`` (weight ``pixel``), ``kd_pairwise`` (weight ``pairwise``), ``temporal``,
        ``temporal_kd``, ``adversarial``; and ``output``.
        """
        w, grid = self.cfg.weights, tuple(self.cfg.grid)
        frames, labels = batch['frames'], batch['labels']
        n, count = frames.shape[:2]
        valid = batch.get('valid')
        both_valid = None if valid is None else torch.cat([valid] * count)
        both = torch.cat(frames.unbind(1))                   # frame t of every sample, then t+k
        s = self.forward_model(both)
        with torch.no_grad():
            t = (teacher_forward(self.teacher, both, self.teacher_precision)
                 if self.uses_teacher else {})
        s_t, s_next = s['logits'][:n], s['logits'][n:]
        terms, weighted, pairs = {}, [], None

        def add(name, weight, term):
            terms[name] = term
            weighted.append(weight * term)

        if w.ce:
            # The key frame's label only: the labels a student trained on labels alone sees.
            add('ce', w.ce, cross_entropy(s_t, labels[:, 0]))
        if w.pseudo_label:
            targets = (self._store_labels(batch) if self.store_targets
                       else self._pseudo_labels(self._teacher_classes(t, batch, n), labels,
                                                both_valid))
            add('pseudo_label', w.pseudo_label, cross_entropy(s['logits'], targets))
        if w.pixel:
            add('kd_pixel', w.pixel, pixel_kd(s['logits'], t['logits'], self.cfg.temperature,
                                              both_valid))
        if w.pairwise:
            add('kd_pairwise', w.pairwise,
                pairwise_kd(s['features'], t['features'], grid, both_valid))
        if w.temporal:
            flow = batch['flows'][:, 0].to(frames.dtype)       # (N, 2, H, W), t -> t+k
            add('temporal', w.temporal,
                motion_consistency(s_t, s_next, flow, self._gate(batch, flow, t, n)))
        if w.temporal_kd:
            f, tf = s['features'], t['features']
            add('temporal_kd', w.temporal_kd, temporal_kd(f[:n], f[n:], tf[:n], tf[n:], grid,
                                                          valid))
        if self.discriminator is not None:
            fake = self._pair(s_t, s_next, valid)
            add('adversarial', w.adversarial, generator_loss(self.discriminator(fake)))
            pairs = (self._pair(t['logits'][:n], t['logits'][n:], valid), fake)
        return {'loss': sum(weighted), **terms, 'output': s_t}, pairs

    def _store_labels(self, batch):
        """Return the store's classes (T*N, H, W), frame t of every sample then t+k, if sure."""
        targets, confidence = batch['targets'], batch['confidence']
        targets = torch.where(confidence >= self.cfg.pseudo_label_confidence, targets,
                              torch.full_like(targets, IGNORE_INDEX))
        return torch.cat(targets.unbind(1))

    def _teacher_classes(self, t, batch, n):
        """Return the teacher's classes (2N, H, W) of t then t+k; t's fused with ``fuse_views``."""
        classes = t['logits'].argmax(1)
        if self.cfg.fuse_views:
            logits = t['logits']
            flow = batch['flows'][:, 0].to(logits.dtype)
            classes[:n] = fused_classes(logits[:n], logits[n:], flow, batch['visible'])
        return classes

    def _gate(self, batch, flow, t, n):
        """
        Return the pixels the temporal term pulls: visible, and kept by ``temporal_gate``.

        The gate reads the label store's classes and confidence, or without a store the
        teacher's online view (``t``, frames t then t+k of the N samples).
        """
        seen, gate = batch['visible'], self.cfg.temporal_gate
        threshold = self.cfg.gate_confidence
        if gate == 'none':
            return seen
        if self.store_targets:
            targets = batch['targets']
            return seen & kept_by_gate(gate, targets[:, 0], targets[:, 1],
                                       batch['confidence'][:, 0], flow, threshold)
        logits = t['logits']
        return seen & teacher_gate(gate, logits[:n], logits[n:], flow, threshold)

    @staticmethod
    def _pseudo_labels(teacher_classes, labels, valid):
        """
        Return the teacher's classes on frames without any label: Naive-Student's targets.

        (2N, H, W), 255 on labeled frames (their own labels teach there) and on padding.
        """
        labels = torch.cat(labels.unbind(1))
        unlabeled = (labels == IGNORE_INDEX).flatten(1).all(dim=1)[:, None, None]
        keep = unlabeled if valid is None else unlabeled & valid
        return torch.where(keep, teacher_classes, torch.full_like(labels, IGNORE_INDEX))

    @staticmethod
    def _pair(logits_t, logits_next, valid=None):
        pair = torch.cat([nnf.softmax(logits_t, 1), nnf.softmax(logits_next, 1)], 1)
        # Padding is zero in teacher and student pairs alike: nothing there to tell them apart.
        return pair if valid is None else pair * valid[:, None].to(pair.dtype)

    def training_state(self) -> dict:
        """Return the discriminator's weights (its update's state is the trainer's to keep)."""
        if self.discriminator is None:
            return {}
        return {'discriminator': self.discriminator.state_dict()}

    def load_training_state(self, state: dict):
        if bool(state) != (self.discriminator is not None):
            raise ValueError('the checkpoint and this task disagree on the discriminator '
                             '(distill.weights.adversarial changed since the run started?)')
        if state:
            self.discriminator.load_state_dict(state['discriminator'])
