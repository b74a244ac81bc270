"""
The training loop shared by every command: one task, its updates, resumable, distributed.

A task's ``training_step(batch, updates)`` runs a whole step and returns what to log
(training/tasks.py). :func:`train` sets a run up and loops over the task's step,
:func:`validate` and :func:`save_training_state`: plain functions with explicit arguments, as
torchvision's references/segmentation keeps them.
"""

from contextlib import contextmanager
from functools import partial
import logging
from pathlib import Path
import sys
import time

import numpy as np
from stkd_ros import __version__
from stkd_ros.config import Config, save_config
from stkd_ros.data.classes import colorize
from stkd_ros.data.datasets import build_clips
from stkd_ros.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from stkd_ros.errors import InputError
from stkd_ros.inference import Segmenter
from stkd_ros.model_file import save_model_file
from stkd_ros.models import build_model
from stkd_ros.training.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from stkd_ros.training.data_needs import DataNeeds
from stkd_ros.training.evaluate import evaluate, evaluation_flow
from stkd_ros.training.loader import train_loader
from stkd_ros.training.logbook import Logbook
from stkd_ros.training.run import seed_everything, setup_runtime, teardown_runtime
from stkd_ros.training.updates import Update
import torch
from tqdm import tqdm

log = logging.getLogger(__name__)


def build_optimizer(params, train_cfg):
    if train_cfg.optimizer == 'sgd':
        return torch.optim.SGD(params, lr=train_cfg.lr, momentum=train_cfg.momentum,
                               weight_decay=train_cfg.weight_decay)
    return torch.optim.AdamW(params, lr=train_cfg.lr, weight_decay=train_cfg.weight_decay)


def poly_with_warmup(step: int, total: int, warmup: int, power: float) -> float:
    """Learning-rate factor: linear warm-up, then (1 - progress) ** power."""
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return max(0.0, 1.0 - progress) ** power


def train(cfg: Config, out_dir, model_cfg, make_task, role: str, needs: DataNeeds) -> dict:
    """
    Train ``model_cfg`` with ``make_task(model)`` to ``train.steps`` into ``out_dir``.

    ``needs`` is what the task's batches bring (training/data_needs.py). Resumes from
    ``out_dir/last.ckpt`` if it is there; evaluates every ``train.eval_every`` steps and at
    the end, checkpoints every ``train.checkpoint_every`` steps, writes ``model.safetensors``
    and returns the last held-out metrics (mIoU, TC, flicker, ...).
    """
    out_dir, t = Path(out_dir), cfg.train
    rt = setup_runtime(t.device)
    try:
        seed_everything(t.seed)
        if rt.is_main:
            out_dir.mkdir(parents=True, exist_ok=True)
            save_config(cfg, out_dir / 'config.yaml')
        val = build_clips(cfg.data, cfg.evaluation.split, clip_length=2, gap=cfg.data.eval_gap)
        meta = model_metadata(cfg, model_cfg, role, val.classes, val.palette)
        model = build_model(model_cfg.arch, len(val.classes), **model_cfg.args)
        task = make_task(model).to(rt.device)
        make_update = partial(
            Update, amp=t.amp and rt.device.type == 'cuda', device_type=rt.device.type,
            lr_factor=partial(poly_with_warmup, total=t.steps, warmup=t.warmup_steps,
                              power=t.poly_power))
        updates = {'model': make_update(build_optimizer(task.trainable_parameters(), t)),
                   **task.own_updates(make_update)}
        step = resume(out_dir / 'last.ckpt', model, task, updates)
        loader = train_loader(cfg.data, needs, batch_size=t.batch_size, seed=t.seed,
                              start_step=step, workers=t.workers, rank=rt.rank,
                              world_size=rt.world_size, run_dir=out_dir)
        if t.torch_compile:
            model.compile()
        if rt.distributed:
            task.distribute(rt.device)   # DDP around the trained model only
        e = cfg.evaluation
        flow = evaluation_flow(e)
        book = Logbook(out_dir, step, enabled=rt.is_main)
        # A live bar on a terminal; in a log file, the periodic log line says the same.
        bar = tqdm(total=t.steps, initial=step, desc=role, dynamic_ncols=True,
                   disable=not (rt.is_main and sys.stderr.isatty()))
        batches, metrics, tic = iter(loader), {}, time.perf_counter()
        task.train()
        while step < t.steps:
            batch = {k: v.to(rt.device, non_blocking=True) for k, v in next(batches).items()}
            losses = task.training_step(batch, updates)
            step += 1
            bar.update(1)
            if step % t.log_every == 0 or step == t.steps:
                rate = t.log_every / (time.perf_counter() - tic)
                tic = time.perf_counter()
                log_step(book, step, losses, updates['model'].lr(), rate)
                if bar.disable and rt.is_main:
                    log.info('%s step %d/%d loss %.4f (%.2f steps/s)', role, step, t.steps,
                             float(losses['loss'].detach()), rate)
            # Held-out scoring on rank 0 alone (the other ranks wait at the next step's
            # all-reduce): its clips are few, and one process scores them as a node would.
            if rt.is_main and (step % t.eval_every == 0 or step == t.steps):
                metrics = validate(model, meta, val, flow, e.max_clips, rt.device, book, step)
            if rt.is_main and (step % t.checkpoint_every == 0 or step == t.steps):
                save_training_state(out_dir / 'last.ckpt', step, model, task, updates)
        bar.close()
        if rt.is_main:
            meta['provenance']['val'] = {k: v for k, v in metrics.items()
                                         if not k.startswith('per_class')}
            save_model_file(out_dir / 'model.safetensors', model, meta)
            log.info('%s: model file %s', role, out_dir / 'model.safetensors')
        book.close()
        return metrics
    finally:
        teardown_runtime(rt)


def log_step(book, step: int, losses: dict, lr: float, steps_per_s: float):
    scalars = {k: float(v.detach()) for k, v in losses.items() if k != 'output'}
    book.scalars(step, {**scalars, 'lr': lr, 'steps_per_s': steps_per_s}, 'train')


@contextmanager
def eval_mode(model):
    """Run a block with the model in eval mode, then restore its previous mode."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def validate(model, meta, clips, flow, max_clips, device, book, step) -> dict:
    """Score the model on held-out clips as a node would run it; log figures and a sample."""
    with eval_mode(model):
        segmenter = Segmenter.from_module(model, meta, device)
        metrics = evaluate(segmenter, clips, flow=flow, max_clips=max_clips)
        clip = clips[0]
        mask = segmenter.segment(clip.frames[0])
    book.scalars(step, {k: v for k, v in metrics.items() if not k.startswith('per_class')},
                 'val')
    palette = np.array(meta['palette'], np.uint8)
    book.image(step, 'val/frame_prediction_label', np.concatenate(
        [clip.frames[0], colorize(mask, palette), colorize(clip.labels[0], palette)], 1))
    log.info('step %d: mIoU %.4f TC %.4f flicker %.4f', step, metrics['miou'], metrics['tc'],
             metrics['flicker'])
    return metrics


def save_training_state(path, step, model, task, updates: dict):
    """Checkpoint the model, the task's own modules, every update's state and the RNGs."""
    save_checkpoint(path, step=step, model=model.state_dict(), task=task.training_state(),
                    updates={name: u.state_dict() for name, u in updates.items()},
                    rng=rng_state())


def resume(path: Path, model, task, updates: dict) -> int:
    """Load ``path`` if it exists; return the step reached (0 without one)."""
    if not path.is_file():
        return 0
    state = load_checkpoint(path)
    if 'updates' not in state:
        raise InputError(f'{path} was written by an earlier stkd_ros and cannot be resumed; '
                         f'move it away to start the run again')
    model.load_state_dict(state['model'])
    task.load_training_state(state['task'])
    if state['updates'].keys() != updates.keys():
        raise InputError(f'{path} holds the updates of {", ".join(state["updates"])}, this '
                         f'run has {", ".join(updates)}; move it away to start again')
    for name, update in updates.items():
        update.load_state_dict(state['updates'][name])
    set_rng_state(state['rng'])
    log.info('resumed from %s at step %d', path, state['step'])
    return int(state['step'])


def model_metadata(cfg: Config, model_cfg, role: str, classes, palette) -> dict:
    """Return what the model file needs to rebuild and run the model, and its provenance."""
    # Pretrained backbone paths matter only for initialization, not for the file.
    args = {k: v for k, v in model_cfg.args.items() if not k.startswith('pretrained')}
    return {'arch': model_cfg.arch, 'arch_args': args,
            'num_classes': len(classes), 'classes': list(classes),
            'palette': np.asarray(palette).tolist(),
            'input_size': list(cfg.data.eval_size),
            'mean': list(IMAGENET_MEAN), 'std': list(IMAGENET_STD),
            'dataset': cfg.data.dataset,
            'provenance': {'role': role, 'steps': cfg.train.steps, 'seed': cfg.train.seed,
                           'stkd_ros': __version__,
                           'created': time.strftime('%Y-%m-%dT%H:%M:%S'),
                           'config': cfg.to_dict()}}
