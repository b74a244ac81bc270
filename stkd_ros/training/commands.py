"""The training and evaluation commands behind `stkd train-*` and `stkd evaluate`."""

import json
import logging
from pathlib import Path

from stkd_ros.config import load_config
from stkd_ros.data.datasets import build_clips
from stkd_ros.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from stkd_ros.data.unlabeled import build_unlabeled
from stkd_ros.errors import InputError
from stkd_ros.inference import Segmenter
from stkd_ros.model_file import load_model_file
from stkd_ros.teacher_precision import resolve_precision
from stkd_ros.temporal_fusion import FusionSettings
from stkd_ros.training.data_needs import data_needs
from stkd_ros.training.evaluate import evaluate, evaluation_flow
from stkd_ros.training.run import resolve_device
from stkd_ros.training.tasks import SupervisedTask
from stkd_ros.training.trainer import train
import yaml

log = logging.getLogger(__name__)


def _config(config_path, steps, overrides):
    overrides = list(overrides or [])
    if steps is not None:
        overrides.append(f'train.steps={int(steps)}')
    return load_config(config_path, overrides)


def train_teacher(config_path, out, steps=None, overrides=()) -> dict:
    """Train the two-branch teacher with cross-entropy on the fused and both branch outputs."""
    from stkd_ros.training.self_training import refuse_stores_run
    cfg = _config(config_path, steps, overrides)
    refuse_stores_run(out)
    return train(cfg, out, cfg.teacher, lambda m: SupervisedTask(m, cfg.train.aux_weight),
                 'teacher', data_needs(cfg, distill=False))


def train_student(config_path, out, steps=None, overrides=()) -> dict:
    """Train the student alone with cross-entropy: the baseline distillation is compared to."""
    cfg = _config(config_path, steps, overrides)
    return train(cfg, out, cfg.student, SupervisedTask, 'student',
                 data_needs(cfg, distill=False))


def distill(config_path, teacher_path, out, steps=None, overrides=()) -> dict:
    """Distill the config's student from a trained teacher model file."""
    from stkd_ros.training.distill_task import DistillationTask
    cfg = _config(config_path, steps, overrides)
    needs = data_needs(cfg, distill=True)      # before the teacher is read: a config error
    teacher, meta = load_model_file(teacher_path)
    for key in ('mean', 'std'):
        if meta[key] != list(IMAGENET_MEAN if key == 'mean' else IMAGENET_STD):
            raise InputError(f'{teacher_path}: teacher normalization {key}={meta[key]} differs '
                             f'from the one students are trained with')

    classes = build_clips(cfg.data, 'val', clip_length=1, gap=1).classes
    if meta['num_classes'] != len(classes):
        raise InputError(f'{teacher_path}: teacher predicts {meta["num_classes"]} classes, '
                         f'{cfg.data.dataset} has {len(classes)}')
    if needs.store:
        check_label_store(cfg, teacher_path)
    elif cfg.distill.weights.pseudo_label:
        log.info('the teacher labels every unlabeled view online; `stkd label` once and '
                 '--labels make each step cost about a plain one')
    # The precision used replaces the setting, so config.yaml and the model file's
    # provenance say which it was (auto resolves per machine).
    setting = cfg.teacher.precision
    cfg.teacher.precision = _run_precision(
        out, setting, resolve_precision(setting, resolve_device(cfg.train.device)))
    log.info('teacher forward in %s (teacher.precision: %s)', cfg.teacher.precision, setting)
    return train(cfg, out, cfg.student,
                 lambda student: DistillationTask(student, teacher, len(classes), cfg.distill,
                                                  store_targets=needs.store is not None,
                                                  teacher_precision=cfg.teacher.precision),
                 'distilled', needs)


def _run_precision(out, setting: str, here: str) -> str:
    """
    Return the teacher's precision for a distill run into ``out``: ``here``, or a resumed run's.

    A run resumed (last.ckpt) goes on at the precision its config.yaml records, so its targets
    are not half fp32 and half bf16 where auto resolves otherwise on this machine; a
    precision asked for by name that differs stops in one line. A run recorded before the
    precision was (no key) ran its teacher in fp32.
    """
    out = Path(out)
    if not (out / 'last.ckpt').is_file() or not (out / 'config.yaml').is_file():
        return here
    recorded = (yaml.safe_load((out / 'config.yaml').read_text()) or {}).get(
        'teacher', {}).get('precision', 'fp32')
    if recorded not in ('fp32', 'bf16') or recorded == here:   # auto: not a distill run's
        return here
    if setting != 'auto':
        raise InputError(f'{out} was distilled with the teacher in {recorded}; resuming it at '
                         f'teacher.precision {setting} would mix the two in one run: set '
                         f'teacher.precision {recorded} (or auto), or train into another --out')
    log.info('%s: resumed at the precision it started at, %s (auto is %s here)',
             out, recorded, here)
    return recorded


def check_label_store(cfg, teacher_path):
    """
    Stop with one line unless ``data.labels`` is a store this run can learn from.

    That is a complete store of this run's video, labeled by this teacher (or the synthetic
    world's own labels: the oracle), that a term reads.
    """
    from stkd_ros.labeling.identity import file_sha256, GROUND_TRUTH, source_identity
    from stkd_ros.labeling.sources import video_sequences
    from stkd_ros.labeling.store import LabelStore
    path, d = cfg.data.labels, cfg.distill
    if not d.weights.pseudo_label and d.temporal_gate == 'none':
        raise InputError(f'--labels {path}: no term reads a label store; set '
                         f'distill.weights.pseudo_label (or distill.temporal_gate)')
    store = LabelStore.open(path)
    if store.teacher_sha256 == GROUND_TRUTH:
        log.warning('%s holds the ground truth (an oracle): a ceiling to measure against, '
                    'not a recipe', path)
    elif store.teacher_sha256 != file_sha256(teacher_path):
        raise InputError(f'--labels {path} was labeled by another teacher (SHA-256 '
                         f'{store.teacher_sha256[:12]}..., {teacher_path} is '
                         f'{file_sha256(teacher_path)[:12]}...); label again with this one')
    here = source_identity(cfg.data)
    if store.source != here:
        raise InputError(f'--labels {path} labels other video ({store.source}); this run '
                         f'learns from {here}')
    video = build_unlabeled(cfg.data, clip_length=1, gap=1)
    missing = [s.name for s in video_sequences(video) if s.name not in store.sequences]
    if missing:
        raise InputError(f'--labels {path} lacks {len(missing)} sequence(s) this run learns '
                         f'from ({missing[0]}, ...); label them with stkd label')


def evaluate_model(model_path, config_path, json_path=None, overrides=(),
                   backend: str = 'torch', temporal_fusion: bool = False,
                   fusion: FusionSettings = None, precision: str = None) -> dict:
    """
    Evaluate a model on the config's validation split.

    ``backend`` 'torch' reads a model file; 'onnxruntime' and 'openvino' an ONNX export (FP32
    or INT8), run on the CPU by the Segmenter (OpenVINO at ``precision``), exactly as
    segment_node runs it. ``temporal_fusion`` runs each held-out street as one fused stream
    from its first frame, as segment_node with ``temporal_fusion`` would, with the stage's
    settings ``fusion`` (given, fusion is on; None: the defaults).
    """
    cfg = load_config(config_path, overrides)
    device = 'cpu' if backend != 'torch' else str(resolve_device(cfg.train.device))
    segmenter = Segmenter(model_path, backend=backend, device=device, precision=precision)
    meta = segmenter.meta
    val = build_clips(cfg.data, cfg.evaluation.split, clip_length=2, gap=cfg.data.eval_gap)
    if len(val.classes) != meta['num_classes']:
        raise InputError(f'{model_path} predicts {meta["num_classes"]} classes but '
                         f'{cfg.data.dataset} has {len(val.classes)}')
    e = cfg.evaluation
    result = evaluate(segmenter, val, flow=evaluation_flow(e), max_clips=e.max_clips,
                      fusion=fusion or (FusionSettings() if temporal_fusion else None))
    result.update({'model': str(model_path), 'arch': meta['arch'], 'dataset': cfg.data.dataset,
                   'backend': backend, 'device': device,
                   'precision': meta.get('quantization', {}).get('precision', 'float32'),
                   'inference_precision': segmenter.precision})
    if json_path:
        Path(json_path).parent.mkdir(parents=True, exist_ok=True)
        Path(json_path).write_text(json.dumps(result, indent=2))
    return result
