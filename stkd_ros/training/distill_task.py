"""
Spatial-temporal consistency distillation as a task.

A frozen teacher, a student, and a discriminator that judges pairs of consecutive predictions.

One forward pass runs the student on frames t and t+k together and the teacher under
``no_grad``; the returned dict holds every weighted term so that logging just iterates it.
The discriminator has its own optimizer and its own step (``discriminator_loss``), on
detached predictions, so its update never moves the student.
"""

from stkd_ros.config import DistillConfig
from stkd_ros.flow.occlusion import photometric_valid
from stkd_ros.losses.adversarial import discriminator_loss, generator_loss, gradient_penalty
from stkd_ros.losses.channel import channel_kd
from stkd_ros.losses.pairwise import pairwise_kd
from stkd_ros.losses.pixel import pixel_kd, teacher_right
from stkd_ros.losses.temporal import motion_consistency, temporal_kd
from stkd_ros.models.discriminator import PairDiscriminator
from stkd_ros.training.tasks import cross_entropy, ModelTask
import torch
from torch import nn
import torch.nn.functional as nnf

BRANCHES = ('cnn', 'transformer')


def ramp_down_factor(step: int, total: int, fraction: float, floor: float) -> float:
    """
    Distillation weight factor of 0-based ``step`` of ``total``.

    1 until the last ``fraction`` of the steps, then linear down to ``floor``, reached at the
    last step.
    """
    start = total * (1.0 - fraction)
    if fraction <= 0 or step < start:
        return 1.0
    return 1.0 - (1.0 - floor) * min(1.0, (step - start) / max(1.0, total - 1 - start))


class DistillationTask(ModelTask):
    frames_needed = 2

    def __init__(self, student: nn.Module, teacher: nn.Module, num_classes: int,
                 cfg: DistillConfig, mean, std):
        super().__init__(student)
        if cfg.gan not in ('hinge', 'wgan-gp'):
            raise ValueError(f'distill.gan: unknown GAN loss {cfg.gan!r}; expected hinge or '
                             f'wgan-gp')
        if cfg.temporal_pool < 1:
            raise ValueError(f'distill.temporal_pool: expected a window of 1 or more pixels, '
                             f'got {cfg.temporal_pool}')
        for key in ('ramp_down', 'ramp_down_to'):
            if not 0 <= getattr(cfg, key) <= 1:
                raise ValueError(f'distill.{key}: expected a value in [0, 1], got '
                                 f'{getattr(cfg, key)}')
        self.cfg = cfg
        self.needs_flow = cfg.temporal > 0
        # Every term but cross-entropy has a target on unlabeled frames; all but the
        # student's own consistency need the teacher.
        self.uses_teacher = any(getattr(cfg, k) for k in ('pixel', 'channel', 'pairwise',
                                                          'temporal_kd', 'adversarial'))
        self.learns_from_unlabeled = self.uses_teacher or cfg.temporal > 0
        # The teacher is frozen and not a registered submodule: it is in no optimizer,
        # no DDP wrapper and no checkpoint.
        teacher.eval().requires_grad_(False)
        object.__setattr__(self, 'teacher', teacher)
        self.discriminator = (PairDiscriminator(num_classes, cfg.d_with_frames)
                              if cfg.adversarial > 0 else None)
        self.register_buffer('mean', torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer('std', torch.tensor(std).view(1, 3, 1, 1), persistent=False)
        # A buffer, not a float attribute: a compiled forward reads it without recompiling.
        self.register_buffer('distill_scale', torch.ones(()), persistent=False)

    def set_progress(self, step: int, total: int):
        c = self.cfg
        self.distill_scale.fill_(ramp_down_factor(step, total, c.ramp_down, c.ramp_down_to))

    def _apply(self, fn, *args, **kwargs):
        # Move the unregistered teacher along with the task (.to, .cuda, ...).
        self.teacher._apply(fn, *args, **kwargs)
        return super()._apply(fn, *args, **kwargs)

    def train(self, mode: bool = True):
        super().train(mode)
        self.teacher.eval()
        return self

    def _pair(self, logits_t, logits_next, frames):
        pair = [nnf.softmax(logits_t, 1), nnf.softmax(logits_next, 1)]
        if self.cfg.d_with_frames:
            pair += [frames[:, 0], frames[:, 1]]
        return torch.cat(pair, 1)

    def _pixel_kd(self, logits, teacher_logits, labels):
        mask = (teacher_right(teacher_logits, labels)
                if self.cfg.pixel_skip_teacher_errors else None)
        return pixel_kd(logits, teacher_logits, self.cfg.temperature, mask)

    def forward(self, batch):
        c = self.cfg
        frames, labels = batch['frames'], batch['labels']      # (N, 2, 3, H, W), (N, 2, H, W)
        n = frames.shape[0]
        both = torch.cat([frames[:, 0], frames[:, 1]])
        s = self.forward_model(both)
        with torch.no_grad():
            t = self.teacher(both) if self.uses_teacher else {}
        s_t, s_next = s['logits'][:n], s['logits'][n:]
        branches = [b for b in BRANCHES if f'{b}_logits' in t]   # a two-branch teacher
        losses = {}
        both_labels = torch.cat([labels[:, 0], labels[:, 1]])
        if c.ce:
            losses['ce'] = c.ce * cross_entropy(s['logits'], both_labels)
        if c.pixel:
            losses['kd_pixel'] = c.pixel * self._pixel_kd(s['logits'], t['logits'],
                                                          both_labels)
            if c.pixel_branches and branches:
                losses['kd_pixel_branches'] = c.pixel * c.pixel_branches * sum(
                    self._pixel_kd(s['logits'], t[f'{b}_logits'], both_labels)
                    for b in branches)
        if c.channel:
            losses['kd_channel'] = c.channel * channel_kd(s['logits'], t['logits'],
                                                          c.temperature)
        if c.pairwise:
            losses['kd_pairwise'] = c.pairwise * pairwise_kd(s['features'], t['features'],
                                                             tuple(c.grid))
            if c.pairwise_branches and branches:
                losses['kd_pairwise_branches'] = c.pairwise * c.pairwise_branches * sum(
                    pairwise_kd(s['features'], t[f'{b}_features'], tuple(c.grid))
                    for b in branches)
        if c.temporal:
            flow = batch['flows'][:, 0].to(frames.dtype)       # (N, 2, H, W), t -> t+k
            images = frames * self.std + self.mean
            valid = photometric_valid(images[:, 0], images[:, 1], flow,
                                      c.photometric_threshold)
            losses['temporal'] = c.temporal * motion_consistency(s_t, s_next, flow, valid,
                                                                 c.temporal_pool)
        if c.temporal_kd:
            f, tf = s['features'], t['features']
            losses['temporal_kd'] = c.temporal_kd * temporal_kd(f[:n], f[n:], tf[:n], tf[n:],
                                                                tuple(c.grid))
        if self.discriminator is not None:
            fake = self._pair(s_t, s_next, frames)
            losses['adversarial'] = c.adversarial * generator_loss(self.discriminator(fake))
        # The scale is exactly 1 unless ramp_down fades the distillation late in training.
        losses = {k: v if k == 'ce' else v * self.distill_scale for k, v in losses.items()}
        out = {'loss': sum(losses.values()), **losses, 'output': s['logits'][:n]}
        if c.ramp_down:
            out['distill_scale'] = self.distill_scale.clone()   # the buffer changes next step
        if self.discriminator is not None:
            out['_d_fake'] = fake.detach()
            out['_d_real'] = self._pair(t['logits'][:n], t['logits'][n:], frames).detach()
        return out

    def discriminator_loss(self, out) -> dict:
        """Compute the discriminator's loss on detached teacher (real) and student (fake) pairs."""
        real, fake = out['_d_real'], out['_d_fake']
        d = self.discriminator
        loss = discriminator_loss(d(real), d(fake), self.cfg.gan)
        result = {'d_loss': loss}
        if self.cfg.gan == 'wgan-gp':
            result['d_gp'] = self.cfg.gp_weight * gradient_penalty(d, real, fake)
            loss = loss + result['d_gp']
        result['loss'] = loss
        return result
