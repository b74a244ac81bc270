"""The training and evaluation commands behind `stkd train-*` and `stkd evaluate`."""

import json
import logging
from pathlib import Path

from stkd_ros.config import Config, load_config
from stkd_ros.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from stkd_ros.errors import InputError
from stkd_ros.flow import build_flow
from stkd_ros.flow.cache import FlowCache
from stkd_ros.inference import Segmenter
from stkd_ros.model_file import load_model_file
from stkd_ros.training.data import build_clips
from stkd_ros.training.evaluate import evaluate
from stkd_ros.training.tasks import SupervisedTask
from stkd_ros.training.trainer import Trainer
import torch

log = logging.getLogger(__name__)


def _config(config_path, steps, overrides):
    overrides = list(overrides or [])
    if steps is not None:
        overrides.append(f'train.steps={int(steps)}')
    return load_config(config_path, overrides)


def train_teacher(config_path, out, steps=None, overrides=()) -> dict:
    """Train the two-branch teacher with cross-entropy on the fused and both branch outputs."""
    cfg = _config(config_path, steps, overrides)
    return Trainer(cfg, out, cfg.teacher,
                   lambda m: SupervisedTask(m, cfg.train.aux_weight), 'teacher').run()


def train_student(config_path, out, steps=None, overrides=()) -> dict:
    """Train the student alone with cross-entropy: the baseline distillation is compared to."""
    cfg = _config(config_path, steps, overrides)
    return Trainer(cfg, out, cfg.student, lambda m: SupervisedTask(m), 'student').run()


def flow_source(cfg: Config, out):
    """Where distillation gets flow: the synthetic ground truth, or a cached estimator."""
    f = cfg.distill.flow
    estimator = build_flow(f.method, **f.args)
    if f.method == 'ground_truth':
        return estimator
    data = cfg.data
    key = data.dataset + '|' + (str(data.root) if data.root else str(data.synthetic))
    return FlowCache(f.cache or Path(out) / 'flow_cache', estimator, key)


def distill(config_path, teacher_path, out, steps=None, overrides=()) -> dict:
    """Distill the config's student from a trained teacher model file."""
    from stkd_ros.training.distill_task import DistillationTask
    cfg = _config(config_path, steps, overrides)
    teacher, meta = load_model_file(teacher_path)
    for key in ('mean', 'std'):
        if meta[key] != list(IMAGENET_MEAN if key == 'mean' else IMAGENET_STD):
            raise InputError(f'{teacher_path}: teacher normalization {key}={meta[key]} differs '
                             f'from the one students are trained with')

    classes = build_clips(cfg.data, 'val', clip_length=1, gap=1).classes
    if meta['num_classes'] != len(classes):
        raise InputError(f'{teacher_path}: teacher predicts {meta["num_classes"]} classes, '
                         f'{cfg.data.dataset} has {len(classes)}')
    flow = flow_source(cfg, out) if cfg.distill.weights.temporal else None
    return Trainer(cfg, out, cfg.student,
                   lambda student: DistillationTask(student, teacher, len(classes), cfg.distill,
                                                    IMAGENET_MEAN, IMAGENET_STD, flow),
                   'distilled').run()


def evaluate_model(model_path, config_path, json_path=None, overrides=(),
                   backend: str = 'torch') -> dict:
    """
    Evaluate a model on the config's validation split.

    ``backend`` 'torch' reads a model file; 'onnxruntime' an ONNX export (FP32 or INT8), run
    on the CPU by the Segmenter, exactly as segment_node runs it.
    """
    cfg = load_config(config_path, overrides)
    if backend == 'onnxruntime':
        device = torch.device('cpu')
        model = Segmenter(model_path, backend='onnxruntime')
        meta = model.meta
    else:
        device = torch.device('cuda' if torch.cuda.is_available()
                              and cfg.train.device != 'cpu' else 'cpu')
        model, meta = load_model_file(model_path, device)
    val = build_clips(cfg.data, cfg.evaluation.split, clip_length=2, gap=cfg.data.eval_gap)
    if len(val.classes) != meta['num_classes']:
        raise InputError(f'{model_path} predicts {meta["num_classes"]} classes but '
                         f'{cfg.data.dataset} has {len(val.classes)}')
    result = evaluate(model, val, input_size=meta['input_size'], mean=meta['mean'],
                      std=meta['std'], num_classes=meta['num_classes'],
                      class_names=meta['classes'],
                      flow=build_flow(cfg.evaluation.flow, **cfg.evaluation.flow_args),
                      device=device, max_clips=cfg.evaluation.max_batches)
    result.update({'model': str(model_path), 'arch': meta['arch'], 'dataset': cfg.data.dataset,
                   'backend': backend, 'device': str(device), 'flow': cfg.evaluation.flow,
                   'precision': meta.get('quantization', {}).get('precision', 'float32')})
    if json_path:
        Path(json_path).parent.mkdir(parents=True, exist_ok=True)
        Path(json_path).write_text(json.dumps(result, indent=2))
    return result
