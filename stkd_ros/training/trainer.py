"""
The training loop shared by every command: one task, one optimizer, resumable, distributed.

A task is a module whose ``forward(batch)`` returns a dict of losses (``loss`` is optimized)
and whose ``after_step`` runs its own extra updates (training/tasks.py). The loop handles the
rest: data, schedule, AMP, DDP, logging, evaluation, checkpoints and the deployable model file.
"""

from dataclasses import dataclass
import logging
from pathlib import Path
import sys
import time
from typing import Iterator

import numpy as np
from stkd_ros import __version__
from stkd_ros.config import Config, save_config
from stkd_ros.data.classes import colorize
from stkd_ros.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from stkd_ros.errors import InputError
from stkd_ros.flow import build_flow
from stkd_ros.model_file import save_model_file
from stkd_ros.models import build_model
from stkd_ros.training.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from stkd_ros.training.data import build_clips, train_loader
from stkd_ros.training.evaluate import eval_mode, evaluate, predict
from stkd_ros.training.logbook import Logbook
from stkd_ros.training.run import Runtime, seed_everything, setup_runtime, teardown_runtime
import torch
from tqdm import tqdm

log = logging.getLogger(__name__)


def build_optimizer(params, train_cfg):
    if train_cfg.optimizer == 'sgd':
        return torch.optim.SGD(params, lr=train_cfg.lr, momentum=train_cfg.momentum,
                               weight_decay=train_cfg.weight_decay)
    if train_cfg.optimizer == 'adamw':
        return torch.optim.AdamW(params, lr=train_cfg.lr, weight_decay=train_cfg.weight_decay)
    raise InputError(f'train.optimizer: unknown optimizer {train_cfg.optimizer!r}; expected '
                     f'sgd or adamw')


def poly_with_warmup(step: int, total: int, warmup: int, power: float) -> float:
    """Learning-rate factor: linear warm-up, then (1 - progress) ** power."""
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return max(0.0, 1.0 - progress) ** power


@dataclass
class _Session:
    """What one training run holds between its steps."""

    rt: Runtime
    model: torch.nn.Module
    task: torch.nn.Module
    runner: torch.nn.Module       # the task, or its compiled form
    optimizer: torch.optim.Optimizer
    schedule: torch.optim.lr_scheduler.LambdaLR
    scaler: torch.amp.GradScaler
    amp: bool
    batches: Iterator[dict]
    val: object                   # held-out clips
    flow: object                  # the flow evaluation uses
    book: Logbook
    meta: dict
    step: int


class Trainer:
    """Train ``model_cfg`` with ``make_task(model)``; writes everything into ``out_dir``."""

    def __init__(self, cfg: Config, out_dir, model_cfg, make_task, role: str):
        self.cfg, self.out_dir, self.model_cfg = cfg, Path(out_dir), model_cfg
        self.make_task, self.role = make_task, role

    def run(self) -> dict:
        """
        Train to ``train.steps``, resuming from ``out_dir/last.ckpt`` if it is there.

        Evaluates every ``train.eval_every`` steps and at the end, checkpoints every
        ``train.checkpoint_every`` steps, writes ``model.safetensors`` and returns the last
        held-out metrics (mIoU, TC, flicker, ...).
        """
        rt = setup_runtime(self.cfg.train.device)
        try:
            session = self._setup(rt)
            metrics = self._train(session)
            if rt.is_main:
                session.meta['provenance']['val'] = {k: v for k, v in metrics.items()
                                                     if k != 'per_class_iou'}
                save_model_file(self.out_dir / 'model.safetensors', session.model,
                                session.meta)
                log.info('%s: model file %s', self.role, self.out_dir / 'model.safetensors')
            session.book.close()
            return metrics
        finally:
            teardown_runtime(rt)

    def _setup(self, rt: Runtime) -> _Session:
        cfg, t = self.cfg, self.cfg.train
        seed_everything(t.seed)
        if rt.is_main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            save_config(cfg, self.out_dir / 'config.yaml')
        val = build_clips(cfg.data, cfg.evaluation.split, clip_length=2, gap=cfg.data.eval_gap)
        model = build_model(self.model_cfg.arch, len(val.classes), **self.model_cfg.args)
        task = self.make_task(model).to(rt.device)
        optimizer = build_optimizer(task.trainable_parameters(), t)

        def lr_factor(s):
            return poly_with_warmup(s, t.steps, t.warmup_steps, t.poly_power)

        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor)
        amp = t.amp and rt.device.type == 'cuda'
        task.start_training(lr_factor, amp)
        step = self._resume(task, optimizer, schedule)
        loader, _ = train_loader(cfg.data, clip_length=task.frames_needed,
                                 batch_size=t.batch_size, seed=t.seed, start_step=step,
                                 workers=t.workers, rank=rt.rank, world_size=rt.world_size,
                                 flow_source=task.flow_source,
                                 unlabeled=task.learns_from_unlabeled,
                                 cache_dir=self.out_dir / 'frame_cache')
        if rt.distributed:
            task.distribute(rt.device)   # DDP around the trained model only
        return _Session(
            rt=rt, model=model, task=task,
            runner=torch.compile(task) if t.torch_compile else task,
            optimizer=optimizer, schedule=schedule,
            scaler=torch.amp.GradScaler('cuda', enabled=amp), amp=amp,
            batches=iter(loader), val=val,
            flow=build_flow(cfg.evaluation.flow, **cfg.evaluation.flow_args),
            book=Logbook(self.out_dir, step, enabled=rt.is_main),
            meta=self._metadata(val.classes, val.palette), step=step)

    def _train(self, s: _Session) -> dict:
        t, rt = self.cfg.train, s.rt
        # A live bar on a terminal; in a log file, the periodic log line says the same.
        bar = tqdm(total=t.steps, initial=s.step, desc=self.role, dynamic_ncols=True,
                   disable=not (rt.is_main and sys.stderr.isatty()))
        metrics, tic = {}, time.perf_counter()
        s.task.train()
        while s.step < t.steps:
            losses = self._train_step(s)
            s.step += 1
            bar.update(1)
            if s.step % t.log_every == 0 or s.step == t.steps:
                scalars = {k: float(v.detach()) for k, v in losses.items() if k != 'output'}
                scalars['lr'] = s.schedule.get_last_lr()[0]
                scalars['steps_per_s'] = t.log_every / (time.perf_counter() - tic)
                tic = time.perf_counter()
                s.book.scalars(s.step, scalars, 'train')
                bar.set_postfix(loss=f'{scalars["loss"]:.3f}')
                if bar.disable and rt.is_main:
                    log.info('%s step %d/%d loss %.4f (%.2f steps/s)', self.role, s.step,
                             t.steps, scalars['loss'], scalars['steps_per_s'])
            if rt.is_main and (s.step % t.eval_every == 0 or s.step == t.steps):
                metrics = self._evaluate(s)
            if rt.is_main and (s.step % t.checkpoint_every == 0 or s.step == t.steps):
                save_checkpoint(self.out_dir / 'last.ckpt', step=s.step,
                                task=s.task.state_dict(), optimizer=s.optimizer.state_dict(),
                                schedule=s.schedule.state_dict(), rng=rng_state())
        bar.close()
        return metrics

    @staticmethod
    def _train_step(s: _Session) -> dict:
        """One update of the model, then the task's own updates; returns what to log."""
        device = s.rt.device
        batch = {k: v.to(device, non_blocking=True) for k, v in next(s.batches).items()}
        with torch.autocast(device.type, enabled=s.amp):
            losses = s.runner(batch)
        s.optimizer.zero_grad(set_to_none=True)
        s.scaler.scale(losses['loss']).backward()
        s.scaler.step(s.optimizer)
        s.scaler.update()
        s.schedule.step()
        return {**losses, **s.task.after_step()}

    def _resume(self, task, optimizer, schedule) -> int:
        path = self.out_dir / 'last.ckpt'
        if not path.is_file():
            return 0
        state = load_checkpoint(path)
        task.load_state_dict(state['task'])
        optimizer.load_state_dict(state['optimizer'])
        schedule.load_state_dict(state['schedule'])
        set_rng_state(state['rng'])
        log.info('resumed from %s at step %d', path, state['step'])
        return int(state['step'])

    def _evaluate(self, s: _Session) -> dict:
        d, e, meta = self.cfg.data, self.cfg.evaluation, s.meta
        metrics = evaluate(s.model, s.val, input_size=d.eval_size, mean=meta['mean'],
                           std=meta['std'], num_classes=meta['num_classes'],
                           class_names=meta['classes'], flow=s.flow, device=s.rt.device,
                           max_clips=e.max_batches)
        s.book.scalars(s.step, {k: v for k, v in metrics.items() if k != 'per_class_iou'},
                       'val')
        clip = s.val[0]
        with eval_mode(s.model):
            pred = predict(s.model, clip.frames[:1], d.eval_size, meta['mean'], meta['std'],
                           s.rt.device)[0].numpy().astype(np.uint8)
        palette = np.array(meta['palette'], np.uint8)
        s.book.image(s.step, 'val/frame_prediction_label', np.concatenate(
            [clip.frames[0], colorize(pred, palette), colorize(clip.labels[0], palette)], 1))
        log.info('step %d: mIoU %.4f TC %.4f flicker %.4f', s.step, metrics['miou'],
                 metrics['tc'], metrics['flicker'])
        return metrics

    def _metadata(self, classes, palette) -> dict:
        # Pretrained backbone paths matter only for initialization, not for the file.
        args = {k: v for k, v in self.model_cfg.args.items() if not k.startswith('pretrained')}
        return {'arch': self.model_cfg.arch, 'arch_args': args,
                'num_classes': len(classes), 'classes': list(classes),
                'palette': np.asarray(palette).tolist(),
                'input_size': list(self.cfg.data.eval_size),
                'mean': list(IMAGENET_MEAN), 'std': list(IMAGENET_STD),
                'dataset': self.cfg.data.dataset,
                'provenance': {'role': self.role, 'steps': self.cfg.train.steps,
                               'seed': self.cfg.train.seed, 'stkd_ros': __version__,
                               'created': time.strftime('%Y-%m-%dT%H:%M:%S'),
                               'config': self.cfg.to_dict()}}
