"""
The training loop shared by every command: one task, one optimizer, resumable, distributed.

A task is a module whose ``forward(batch)`` returns a dict of losses (``loss`` is optimized).
The loop handles the rest: data, schedule, AMP, DDP, logging, evaluation, checkpoints and the
deployable model file.
"""

import logging
from pathlib import Path
import sys
import time

import numpy as np
from stkd_ros import __version__
from stkd_ros.config import Config, save_config
from stkd_ros.data.classes import colorize
from stkd_ros.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from stkd_ros.flow import build_flow
from stkd_ros.flow.cache import FlowCache
from stkd_ros.model_file import save_model_file
from stkd_ros.models import build_model
from stkd_ros.training.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from stkd_ros.training.data import build_clips, train_loader
from stkd_ros.training.evaluate import eval_mode, evaluate, predict
from stkd_ros.training.logbook import Logbook
from stkd_ros.training.run import seed_everything, setup_runtime, teardown_runtime
import torch
from tqdm import tqdm

log = logging.getLogger(__name__)


def build_optimizer(params, train_cfg):
    if train_cfg.optimizer == 'sgd':
        return torch.optim.SGD(params, lr=train_cfg.lr, momentum=train_cfg.momentum,
                               weight_decay=train_cfg.weight_decay)
    if train_cfg.optimizer == 'adamw':
        return torch.optim.AdamW(params, lr=train_cfg.lr, weight_decay=train_cfg.weight_decay)
    raise ValueError(f'train.optimizer: unknown optimizer {train_cfg.optimizer!r}; expected '
                     f'sgd or adamw')


def poly_with_warmup(step: int, total: int, warmup: int, power: float) -> float:
    """Learning-rate factor: linear warm-up, then (1 - progress) ** power."""
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return max(0.0, 1.0 - progress) ** power


def flow_source(cfg: Config, task, out_dir):
    """Where distillation gets flow: the synthetic ground truth, or a cached estimator."""
    if task.frames_needed < 2 or not getattr(task, 'needs_flow', False):
        return None
    d = cfg.distill
    estimator = build_flow(d.flow, **d.flow_args)
    if d.flow == 'ground_truth':
        return estimator
    data = cfg.data
    key = data.dataset + '|' + (str(data.root) if data.root else str(data.synthetic))
    return FlowCache(d.flow_cache or Path(out_dir) / 'flow_cache', estimator, key)


class Trainer:
    """Train ``model_cfg`` with ``make_task(model)``; writes everything into ``out_dir``."""

    def __init__(self, cfg: Config, out_dir, model_cfg, make_task, role: str):
        self.cfg, self.out_dir, self.model_cfg = cfg, Path(out_dir), model_cfg
        self.make_task, self.role = make_task, role

    def run(self) -> dict:
        cfg, t = self.cfg, self.cfg.train
        rt = setup_runtime(t.device)
        try:
            return self._run(cfg, t, rt)
        finally:
            teardown_runtime(rt)

    def _run(self, cfg, t, rt):
        seed_everything(t.seed)
        if rt.is_main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            save_config(cfg, self.out_dir / 'config.yaml')
        val = build_clips(cfg.data, 'val', clip_length=2, gap=cfg.data.eval_gap)
        classes, palette = val.classes, val.palette
        model = build_model(self.model_cfg.arch, len(classes), **self.model_cfg.args)
        task = self.make_task(model).to(rt.device)
        optimizer = build_optimizer(task.trainable_parameters(), t)

        def lr_factor(s):
            return poly_with_warmup(s, t.steps, t.warmup_steps, t.poly_power)

        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor)
        d_optimizer = None
        if task.discriminator is not None:
            d_optimizer = torch.optim.Adam(task.discriminator.parameters(),
                                           lr=cfg.distill.d_lr, betas=(0.5, 0.999))
        step = self._resume(task, optimizer, schedule, d_optimizer)
        loader, _ = train_loader(cfg.data, clip_length=task.frames_needed,
                                 batch_size=t.batch_size, seed=t.seed, start_step=step,
                                 workers=t.workers, rank=rt.rank, world_size=rt.world_size,
                                 flow_source=flow_source(cfg, task, self.out_dir),
                                 learns_from_unlabeled=task.learns_from_unlabeled)
        if rt.distributed:
            task.distribute(rt.device)   # DDP around the trained model only
        runner = torch.compile(task) if t.torch_compile else task
        use_amp = t.amp and rt.device.type == 'cuda'
        scaler = torch.amp.GradScaler('cuda', enabled=use_amp)
        book = Logbook(self.out_dir, step, enabled=rt.is_main)
        flow = build_flow(cfg.evaluation.flow, **cfg.evaluation.flow_args)
        meta = self._metadata(classes, palette)
        # A live bar on a terminal; in a log file, the periodic log line says the same.
        bar = tqdm(total=t.steps, initial=step, desc=self.role, dynamic_ncols=True,
                   disable=not (rt.is_main and sys.stderr.isatty()))
        metrics, batches, tic = {}, iter(loader), time.perf_counter()
        task.train()
        while step < t.steps:
            batch = {k: v.to(rt.device, non_blocking=True) for k, v in next(batches).items()}
            task.set_progress(step, t.steps)
            with torch.autocast(rt.device.type, enabled=use_amp):
                losses = runner(batch)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(losses['loss']).backward()
            scaler.step(optimizer)
            scaler.update()
            schedule.step()
            if d_optimizer is not None:
                # The discriminator follows the student's schedule (as in SKD's training
                # script); at a constant rate it overpowers the decaying student late in training.
                d_lr = cfg.distill.d_lr * (lr_factor(step) if cfg.distill.d_lr_decay else 1.0)
                losses.update(self._discriminator_step(task, losses, d_optimizer, d_lr, rt,
                                                       use_amp))
            step += 1
            bar.update(1)
            if step % t.log_every == 0 or step == t.steps:
                scalars = {k: float(v.detach()) for k, v in losses.items()
                           if k != 'output' and not k.startswith('_')}
                scalars['lr'] = schedule.get_last_lr()[0]
                scalars['steps_per_s'] = t.log_every / (time.perf_counter() - tic)
                tic = time.perf_counter()
                book.scalars(step, scalars, 'train')
                bar.set_postfix(loss=f'{scalars["loss"]:.3f}')
                if bar.disable and rt.is_main:
                    log.info('%s step %d/%d loss %.4f (%.2f steps/s)', self.role, step,
                             t.steps, scalars['loss'], scalars['steps_per_s'])
            if rt.is_main and (step % t.eval_every == 0 or step == t.steps):
                metrics = self._evaluate(model, val, flow, rt, book, step, meta)
            if rt.is_main and (step % t.checkpoint_every == 0 or step == t.steps):
                extra = {'d_optimizer': d_optimizer.state_dict()} if d_optimizer else {}
                save_checkpoint(self.out_dir / 'last.ckpt', step=step, task=task.state_dict(),
                                optimizer=optimizer.state_dict(),
                                schedule=schedule.state_dict(), rng=rng_state(), **extra)
        bar.close()
        if rt.is_main:
            meta['provenance']['val'] = {k: v for k, v in metrics.items()
                                         if k != 'per_class_iou'}
            save_model_file(self.out_dir / 'model.safetensors', model, meta)
            log.info('%s: model file %s', self.role, self.out_dir / 'model.safetensors')
        book.close()
        return metrics

    @staticmethod
    def _discriminator_step(task, losses, d_optimizer, d_lr, rt, use_amp) -> dict:
        """One discriminator update at rate ``d_lr`` on the detached pairs of this step."""
        for group in d_optimizer.param_groups:
            group['lr'] = d_lr
        with torch.autocast(rt.device.type, enabled=use_amp):
            d_losses = task.discriminator_loss(losses)
        d_optimizer.zero_grad(set_to_none=True)
        d_losses['loss'].backward()
        if rt.distributed:
            for p in task.discriminator.parameters():
                if p.grad is not None:
                    torch.distributed.all_reduce(p.grad)
                    p.grad /= rt.world_size
        d_optimizer.step()
        return {'d_lr': torch.tensor(d_lr),
                **{k: v for k, v in d_losses.items() if k != 'loss'}}

    def _resume(self, task, optimizer, schedule, d_optimizer=None) -> int:
        path = self.out_dir / 'last.ckpt'
        if not path.is_file():
            return 0
        state = load_checkpoint(path)
        task.load_state_dict(state['task'])
        optimizer.load_state_dict(state['optimizer'])
        schedule.load_state_dict(state['schedule'])
        if d_optimizer is not None:
            d_optimizer.load_state_dict(state['d_optimizer'])
        set_rng_state(state['rng'])
        log.info('resumed from %s at step %d', path, state['step'])
        return int(state['step'])

    def _evaluate(self, model, val, flow, rt, book, step, meta):
        d, e = self.cfg.data, self.cfg.evaluation
        metrics = evaluate(model, val, input_size=d.eval_size, mean=meta['mean'],
                           std=meta['std'], num_classes=meta['num_classes'],
                           class_names=meta['classes'], flow=flow, device=rt.device,
                           max_clips=e.max_batches)
        book.scalars(step, {k: v for k, v in metrics.items() if k != 'per_class_iou'}, 'val')
        clip = val[0]
        with eval_mode(model):
            pred = predict(model, clip.frames[:1], d.eval_size, meta['mean'], meta['std'],
                           rt.device)[0].numpy().astype(np.uint8)
        palette = np.array(meta['palette'], np.uint8)
        book.image(step, 'val/frame_prediction_label', np.concatenate(
            [clip.frames[0], colorize(pred, palette), colorize(clip.labels[0], palette)], 1))
        log.info('step %d: mIoU %.4f TC %.4f flicker %.4f', step, metrics['miou'],
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
