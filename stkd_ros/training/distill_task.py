"""
Spatial-temporal consistency distillation as a task.

A frozen teacher, a student, and a discriminator that judges pairs of consecutive predictions.

One forward pass runs the student on frames t and t+k together and the teacher under
``no_grad``; the returned dict holds every weighted term so that logging just iterates it.
The task owns the discriminator, its optimizer, its learning rate and its step
(``after_step``), which judges the pairs of the last forward, detached, so the discriminator's
update never moves the student.
"""

from stkd_ros.config import DistillConfig
from stkd_ros.data.classes import IGNORE_INDEX
from stkd_ros.errors import InputError
from stkd_ros.flow.occlusion import photometric_valid
from stkd_ros.losses.adversarial import discriminator_loss, generator_loss
from stkd_ros.losses.channel import channel_kd
from stkd_ros.losses.pairwise import pairwise_kd
from stkd_ros.losses.pixel import pixel_kd
from stkd_ros.losses.temporal import motion_consistency, temporal_kd
from stkd_ros.models.discriminator import PairDiscriminator
from stkd_ros.training.tasks import cross_entropy, ModelTask
import torch
from torch import nn
import torch.distributed as dist
import torch.nn.functional as nnf

BRANCHES = ('cnn', 'transformer')


class DistillationTask(ModelTask):
    """
    Distill ``student`` from the frozen ``teacher`` with the terms ``cfg.weights`` switches on.

    ``flow_source`` gives the training clips their flow from frame t to t+k (an estimator, a
    cache or the synthetic ground truth); it is needed only when the temporal consistency term
    is on.
    """

    def __init__(self, student: nn.Module, teacher: nn.Module, num_classes: int,
                 cfg: DistillConfig, mean, std, flow_source=None):
        super().__init__(student)
        self.cfg = cfg
        w = cfg.weights
        if w.temporal > 0 and flow_source is None:
            raise InputError('distill.weights.temporal needs optical flow; no flow source '
                             'was given')
        self.flow_source = flow_source if w.temporal > 0 else None
        # Every term but cross-entropy has a target on unlabeled frames; all but the
        # student's own consistency need the teacher.
        self.uses_teacher = any((w.pixel, w.channel, w.pairwise, w.temporal_kd, w.adversarial,
                                 w.pseudo_label))
        self.learns_from_unlabeled = self.uses_teacher or w.temporal > 0
        # Only the terms that compare frames t and t+k need the second frame; without them a
        # step costs the student and the teacher one frame per sample, not two.
        self.frames_needed = 2 if any((w.temporal, w.temporal_kd, w.adversarial)) else 1
        # The teacher is frozen and not a registered submodule: it is in no optimizer,
        # no DDP wrapper and no checkpoint.
        teacher.eval().requires_grad_(False)
        object.__setattr__(self, 'teacher', teacher)
        self.discriminator = PairDiscriminator(num_classes) if w.adversarial > 0 else None
        self.register_buffer('mean', torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer('std', torch.tensor(std).view(1, 3, 1, 1), persistent=False)
        self._d_step = None     # optimizer, schedule and scaler, from start_training
        self._judged = None     # (real, fake) pairs of the last forward, detached

    def _apply(self, fn, *args, **kwargs):
        # Move the unregistered teacher along with the task (.to, .cuda, ...).
        self.teacher._apply(fn, *args, **kwargs)
        return super()._apply(fn, *args, **kwargs)

    def train(self, mode: bool = True):
        super().train(mode)
        self.teacher.eval()
        return self

    def forward(self, batch):
        """
        Return the weighted terms of one batch of frame pairs.

        batch: ``frames`` (N, T, 3, H, W) normalized frames t and t+k (T = 2), or frame t
        alone (T = 1) when no term compares frames (``frames_needed``); ``labels``
        (N, T, H, W), 255 where a frame has no label; ``flows`` (N, 1, 2, H, W) from t to t+k,
        when the temporal term is on; ``valid`` (N, H, W), False on crop padding, which no
        term treats as image (every pixel counts without it).

        Returns ``loss`` (the sum that is optimized), one entry per term that is switched on
        (``ce``, ``pseudo_label``, ``kd_pixel``, ``kd_pixel_branches``, ``kd_channel``,
        ``kd_pairwise``, ``kd_pairwise_branches``, ``temporal``, ``temporal_kd``,
        ``adversarial``), each already weighted, and ``output``, the student's logits of frame t.
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
        branches = [b for b in BRANCHES if f'{b}_logits' in t]   # a two-branch teacher
        # Soft targets at the stride the config asks for (1: every pixel).
        s_kd, t_kd, kd_valid = self._at_logit_stride(s['logits'], t, branches, both_valid)
        losses = {}
        if w.ce:
            # The key frame's label only: the labels a student trained on labels alone sees.
            losses['ce'] = w.ce * cross_entropy(s_t, labels[:, 0])
        if w.pseudo_label:
            losses['pseudo_label'] = w.pseudo_label * cross_entropy(
                s['logits'], self._pseudo_labels(t['logits'], labels, both_valid))
        if w.pixel:
            temp = self.cfg.temperature
            losses['kd_pixel'] = w.pixel * pixel_kd(s_kd, t_kd['logits'], temp, kd_valid)
            if w.pixel_branches and branches:
                losses['kd_pixel_branches'] = w.pixel * w.pixel_branches * sum(
                    pixel_kd(s_kd, t_kd[f'{b}_logits'], temp, kd_valid) for b in branches)
        if w.channel:
            losses['kd_channel'] = w.channel * channel_kd(s_kd, t_kd['logits'],
                                                          self.cfg.temperature, kd_valid)
        if w.pairwise:
            losses['kd_pairwise'] = w.pairwise * pairwise_kd(s['features'], t['features'], grid,
                                                             both_valid)
            if w.pairwise_branches and branches:
                losses['kd_pairwise_branches'] = w.pairwise * w.pairwise_branches * sum(
                    pairwise_kd(s['features'], t[f'{b}_features'], grid, both_valid)
                    for b in branches)
        if w.temporal:
            flow = batch['flows'][:, 0].to(frames.dtype)       # (N, 2, H, W), t -> t+k
            images = frames * self.std + self.mean
            seen = photometric_valid(images[:, 0], images[:, 1], flow,
                                     self.cfg.flow.photometric_threshold)
            if valid is not None:
                seen = seen & valid
            losses['temporal'] = w.temporal * motion_consistency(s_t, s_next, flow, seen)
        if w.temporal_kd:
            f, tf = s['features'], t['features']
            losses['temporal_kd'] = w.temporal_kd * temporal_kd(f[:n], f[n:], tf[:n], tf[n:],
                                                                grid, valid)
        if self.discriminator is not None:
            pair_valid = None if kd_valid is None else kd_valid[:n]
            fake = self._pair(s_kd[:n], s_kd[n:], pair_valid)
            losses['adversarial'] = w.adversarial * generator_loss(self.discriminator(fake))
            self._judged = (self._pair(t_kd['logits'][:n], t_kd['logits'][n:],
                                       pair_valid).detach(), fake.detach())
        return {'loss': sum(losses.values()), **losses, 'output': s_t}

    def _at_logit_stride(self, student_logits, teacher, branches, valid):
        """Average-pool the logits (and keep the mostly real cells) by ``logit_stride``."""
        k = self.cfg.logit_stride
        if k == 1 or not teacher:
            return student_logits, teacher, valid

        def pool(x):
            return nnf.avg_pool2d(x, k, ceil_mode=True)

        keys = ['logits'] + [f'{b}_logits' for b in branches]
        pooled_valid = None if valid is None else pool(valid[:, None].float())[:, 0] > 0.5
        return pool(student_logits), {key: pool(teacher[key]) for key in keys}, pooled_valid

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
        optimizer = torch.optim.Adam(self.discriminator.parameters(),
                                     lr=self.cfg.discriminator.lr, betas=(0.5, 0.999))
        # The discriminator follows the student's schedule (as in SKD's training script); at
        # a constant rate it overpowers the decaying student late in training.
        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor)
        scaler = torch.amp.GradScaler(self.mean.device.type, enabled=amp)
        self._d_step = (optimizer, schedule, scaler, amp)

    def after_step(self) -> dict:
        """Update the discriminator on the teacher (real) and student (fake) pairs just seen."""
        if self.discriminator is None:
            return {}
        optimizer, schedule, scaler, amp = self._d_step
        real, fake = self._judged
        d = self.discriminator
        lr = schedule.get_last_lr()[0]
        with torch.autocast(real.device.type, enabled=amp):
            loss = discriminator_loss(d(real), d(fake))
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        if dist.is_initialized() and dist.get_world_size() > 1:
            # The discriminator is outside DDP: average its gradients by hand.
            for p in d.parameters():
                if p.grad is not None:
                    dist.all_reduce(p.grad)
                    p.grad /= dist.get_world_size()
        scaler.step(optimizer)
        scaler.update()
        schedule.step()
        self._judged = None
        return {'d_loss': loss.detach(), 'd_lr': torch.tensor(lr)}

    def get_extra_state(self):
        # Saved with the task's state_dict, so a resumed run continues the same Adam moments.
        if self._d_step is None:
            return {}
        optimizer, schedule, scaler, _ = self._d_step
        return {'d_optimizer': optimizer.state_dict(), 'd_schedule': schedule.state_dict(),
                'd_scaler': scaler.state_dict()}

    def set_extra_state(self, state):
        if self._d_step is None or not state:
            return
        optimizer, schedule, scaler, _ = self._d_step
        optimizer.load_state_dict(state['d_optimizer'])
        schedule.load_state_dict(state['d_schedule'])
        scaler.load_state_dict(state['d_scaler'])
