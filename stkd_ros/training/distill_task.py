"""
Spatial-temporal consistency distillation as a task.

A frozen teacher, a student, and a discriminator that judges pairs of consecutive predictions.

One forward pass runs the student on frames t and t+k together and the teacher under
``no_grad``; the returned dict holds every term unweighted beside the weighted total, so
``metrics.csv`` compares across weight sweeps. The task owns the discriminator, its optimizer,
its learning rate and its step (``after_step``), which judges the pairs of the last forward,
detached, so the discriminator's update never moves the student.
"""

from stkd_ros.config import DistillConfig
from stkd_ros.data.classes import IGNORE_INDEX
from stkd_ros.errors import InputError
from stkd_ros.flow.warp import warp_labels
from stkd_ros.losses.adversarial import discriminator_loss, generator_loss
from stkd_ros.losses.pairwise import pairwise_kd
from stkd_ros.losses.pixel import pixel_kd
from stkd_ros.losses.temporal import motion_consistency, temporal_kd
from stkd_ros.models.discriminator import PairDiscriminator
from stkd_ros.training.tasks import cross_entropy, ModelTask
import torch
from torch import nn
import torch.distributed as dist
import torch.nn.functional as nnf


class DistillationTask(ModelTask):
    """
    Distill ``student`` from the frozen ``teacher`` with the terms ``cfg.weights`` switches on.

    The teacher is a registered submodule (it moves with the task), frozen and in eval mode;
    it is in no optimizer, and neither in DDP (which wraps the student alone) nor in
    checkpoints (the trainer saves the student and :meth:`training_state`).
    """

    def __init__(self, student: nn.Module, teacher: nn.Module, num_classes: int,
                 cfg: DistillConfig, store_targets: bool = False):
        super().__init__(student)
        self.cfg = cfg
        w = cfg.weights
        if cfg.temporal_gate != 'none' and not store_targets:
            raise InputError(f'distill.temporal_gate: {cfg.temporal_gate} reads a label store; '
                             f'give one with --labels (data.labels)')
        # With a label store the unlabeled frames' classes come with the batch (``targets``),
        # labeled once and offline; without one the teacher labels every view online.
        self.store_targets = store_targets
        # Every term but cross-entropy has a target on unlabeled frames; all but the
        # student's own consistency and the store's classes need the teacher.
        self.uses_teacher = any((w.pixel, w.pairwise, w.temporal_kd, w.adversarial,
                                 w.pseudo_label and not store_targets))
        self.learns_from_unlabeled = any((w.pixel, w.pairwise, w.temporal_kd, w.adversarial,
                                          w.pseudo_label, w.temporal))
        self.needs_flow = w.temporal > 0
        # Only the terms that compare frames t and t+k need the second frame; without them a
        # step costs the student and the teacher one frame per sample, not two.
        self.frames_needed = 2 if any((w.temporal, w.temporal_kd, w.adversarial)) else 1
        self.teacher = teacher.eval().requires_grad_(False)
        self.discriminator = PairDiscriminator(num_classes) if w.adversarial > 0 else None
        self.d_optimizer = self.d_schedule = self.d_scaler = None   # start_training
        self.amp = False
        self._judged = None     # (real, fake) pairs of the last forward, detached

    def train(self, mode: bool = True):
        super().train(mode)
        self.teacher.eval()
        return self

    def forward(self, batch):
        """
        Return the total loss, each term unweighted, and the student's logits of frame t.

        batch: ``frames`` (N, T, 3, H, W) normalized frames t and t+k (T = 2), or frame t
        alone (T = 1) when no term compares frames (``frames_needed``); ``labels``
        (N, T, H, W), 255 where a frame has no label; ``flows`` (N, 1, 2, H, W) from t to t+k
        and ``visible`` (N, H, W), the pixels seen in both frames by the photometric check,
        when the temporal term is on (``needs_flow``); ``valid`` (N, H, W), False on crop
        padding, which no term treats as image (every pixel counts without it); with a label
        store, ``targets`` (N, T, H, W) its classes (255 on labeled clips and padding) and
        ``confidence`` (N, T, H, W) in [0, 1].

        Returns ``loss`` (the sum of each weight times its term, what is optimized), one
        unweighted entry per term switched on (``ce``, ``pseudo_label``, ``kd_pixel``,
        ``kd_pairwise``, ``temporal``, ``temporal_kd``, ``adversarial``) and ``output``.
        """
        w, grid = self.cfg.weights, tuple(self.cfg.grid)
        frames, labels = batch['frames'], batch['labels']
        n, count = frames.shape[:2]
        valid = batch.get('valid')
        both_valid = None if valid is None else torch.cat([valid] * count)
        both = torch.cat(frames.unbind(1))                   # frame t of every sample, then t+k
        s = self.forward_model(both)
        with torch.no_grad():
            t = self.teacher(both) if self.uses_teacher else {}
        s_t, s_next = s['logits'][:n], s['logits'][n:]
        terms = {}
        if w.ce:
            # The key frame's label only: the labels a student trained on labels alone sees.
            terms['ce'] = cross_entropy(s_t, labels[:, 0])
        if w.pseudo_label:
            targets = (self._store_labels(batch) if self.store_targets
                       else self._pseudo_labels(t['logits'], labels, both_valid))
            terms['pseudo_label'] = cross_entropy(s['logits'], targets)
        if w.pixel:
            terms['kd_pixel'] = pixel_kd(s['logits'], t['logits'], self.cfg.temperature,
                                         both_valid)
        if w.pairwise:
            terms['kd_pairwise'] = pairwise_kd(s['features'], t['features'], grid, both_valid)
        if w.temporal:
            flow = batch['flows'][:, 0].to(frames.dtype)       # (N, 2, H, W), t -> t+k
            terms['temporal'] = motion_consistency(s_t, s_next, flow, self._gate(batch, flow))
        if w.temporal_kd:
            f, tf = s['features'], t['features']
            terms['temporal_kd'] = temporal_kd(f[:n], f[n:], tf[:n], tf[n:], grid, valid)
        if self.discriminator is not None:
            fake = self._pair(s_t, s_next, valid)
            terms['adversarial'] = generator_loss(self.discriminator(fake))
            real = self._pair(t['logits'][:n], t['logits'][n:], valid)
            self._judged = (real.detach(), fake.detach())
        loss = sum(getattr(w, self._weight_of(name)) * term for name, term in terms.items())
        return {'loss': loss, **terms, 'output': s_t}

    @staticmethod
    def _weight_of(term: str) -> str:
        """Return the ``distill.weights`` field of a loss term."""
        return term[3:] if term.startswith('kd_') else term

    def _store_labels(self, batch):
        """Return the store's classes (T*N, H, W), frame t of every sample then t+k, if sure."""
        targets, confidence = batch['targets'], batch['confidence']
        targets = torch.where(confidence >= self.cfg.pseudo_label_confidence, targets,
                              torch.full_like(targets, IGNORE_INDEX))
        return torch.cat(targets.unbind(1))

    def _gate(self, batch, flow):
        """Return the pixels the temporal term pulls: visible, and kept by ``temporal_gate``."""
        seen, gate = batch['visible'], self.cfg.temporal_gate
        if gate == 'confidence':
            seen = seen & (batch['confidence'][:, 0] >= self.cfg.gate_confidence)
        elif gate == 'agreement':
            targets = batch['targets']
            warped = warp_labels(targets[:, 1], flow)
            seen = seen & (targets[:, 0] == warped) & (targets[:, 0] != IGNORE_INDEX)
        return seen

    @staticmethod
    def _pseudo_labels(teacher_logits, labels, valid):
        """
        Return the teacher's classes on frames without any label: Naive-Student's targets.

        (2N, H, W), 255 on labeled frames (their own labels teach there) and on padding.
        """
        labels = torch.cat(labels.unbind(1))
        unlabeled = (labels == IGNORE_INDEX).flatten(1).all(dim=1)[:, None, None]
        keep = unlabeled if valid is None else unlabeled & valid
        return torch.where(keep, teacher_logits.argmax(1),
                           torch.full_like(labels, IGNORE_INDEX))

    @staticmethod
    def _pair(logits_t, logits_next, valid=None):
        pair = torch.cat([nnf.softmax(logits_t, 1), nnf.softmax(logits_next, 1)], 1)
        # Padding is zero in teacher and student pairs alike: nothing there to tell them apart.
        return pair if valid is None else pair * valid[:, None].to(pair.dtype)

    def start_training(self, lr_factor, amp: bool):
        """Build the discriminator's Adam, on the student's learning-rate factor."""
        if self.discriminator is None:
            return
        self.d_optimizer = torch.optim.Adam(self.discriminator.parameters(),
                                            lr=self.cfg.discriminator.lr, betas=(0.5, 0.999))
        # The discriminator follows the student's schedule (as in SKD's training script); at
        # a constant rate it overpowers the decaying student late in training.
        self.d_schedule = torch.optim.lr_scheduler.LambdaLR(self.d_optimizer, lr_factor)
        device = next(self.discriminator.parameters()).device
        self.d_scaler = torch.amp.GradScaler(device.type, enabled=amp)
        self.amp = amp

    def after_step(self) -> dict:
        """Update the discriminator on the teacher (real) and student (fake) pairs just seen."""
        if self.discriminator is None:
            return {}
        real, fake = self._judged
        d = self.discriminator
        lr = self.d_schedule.get_last_lr()[0]
        with torch.autocast(real.device.type, enabled=self.amp):
            loss = discriminator_loss(d(real), d(fake))
        self.d_optimizer.zero_grad(set_to_none=True)
        self.d_scaler.scale(loss).backward()
        if dist.is_initialized() and dist.get_world_size() > 1:
            # The discriminator is outside DDP: average its gradients by hand.
            for p in d.parameters():
                if p.grad is not None:
                    dist.all_reduce(p.grad)
                    p.grad /= dist.get_world_size()
        self.d_scaler.step(self.d_optimizer)
        self.d_scaler.update()
        self.d_schedule.step()
        self._judged = None
        return {'d_loss': loss.detach(), 'd_lr': torch.tensor(lr)}

    def training_state(self) -> dict:
        """Return the discriminator, its optimizer, schedule and scaler: what a resume needs."""
        if self.discriminator is None:
            return {}
        return {'discriminator': self.discriminator.state_dict(),
                'd_optimizer': self.d_optimizer.state_dict(),
                'd_schedule': self.d_schedule.state_dict(),
                'd_scaler': self.d_scaler.state_dict()}

    def load_training_state(self, state: dict):
        if bool(state) != (self.discriminator is not None):
            raise ValueError('the checkpoint and this task disagree on the discriminator '
                             '(distill.weights.adversarial changed since the run started?)')
        if not state:
            return
        if self.d_optimizer is None:
            raise RuntimeError('load_training_state before start_training: the '
                               "discriminator's optimizer state would be lost")
        self.discriminator.load_state_dict(state['discriminator'])
        self.d_optimizer.load_state_dict(state['d_optimizer'])
        self.d_schedule.load_state_dict(state['d_schedule'])
        self.d_scaler.load_state_dict(state['d_scaler'])
