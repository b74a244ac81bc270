"""
`stkd train-teacher --labels STORE ...`: a self-training round, the next teacher.

Naive-Student (Chen et al. ECCV 2020): the next teacher learns from the labeled frames and
from label stores made with no new annotation: the labeled frames' truth carried along the
flow (`stkd propagate-labels`) and the current teacher's test-time-augmented labels of the
unlabeled video (`stkd label`). Each batch holds ``train.batch_size`` labeled clips, as a
run without stores draws them, followed by ``ratio`` times as many stored frames drawn
from all the stores at once (``stkd_ros.training.store_frames``); the stores are checked before
training starts, so a store of other video or classes stops in one line.
"""

from dataclasses import replace
import json
from pathlib import Path

from stkd_ros.config import load_config
from stkd_ros.data.datasets import build_clips
from stkd_ros.errors import InputError
from stkd_ros.labeling.store import LabelStore, write_json
from stkd_ros.training.data_needs import data_needs
from stkd_ros.training.store_frames import stores_as_clips
from stkd_ros.training.tasks import SupervisedTask
from stkd_ros.training.trainer import train

#: Stored frames per labeled clip in a batch.
RATIO = 1.0
#: The stores a run learns from, beside its config.yaml.
STORES_RECORD = 'label_stores.json'
#: What the record keeps of each store's manifest: what makes its labels what they are.
STORE_KEYS = ('teacher_sha256', 'teacher_precision', 'source', 'settings')


def train_teacher_with_stores(config_path, out, stores, *, steps=None, overrides=(),
                              ratio: float = RATIO) -> dict:
    """Train the teacher on the config's labeled frames and the frames of ``stores``."""
    if not stores:
        raise InputError('--labels: name at least one label store')
    if not ratio > 0:
        raise InputError(f'--labels-ratio: expected stored frames per labeled clip above 0, '
                         f'got {ratio}')
    sets = list(overrides) + ([f'train.steps={int(steps)}'] if steps is not None else [])
    cfg = load_config(config_path, sets)
    classes = build_clips(cfg.data, 'val', clip_length=1, gap=1).classes
    frames = stores_as_clips(cfg.data, stores, classes)       # one-line errors, before training
    _record_stores(Path(out), stores, ratio)
    needs = replace(data_needs(cfg, distill=False), stores=tuple(str(s) for s in stores),
                    stores_ratio=ratio)
    metrics = train(cfg, out, cfg.teacher, lambda m: SupervisedTask(m, cfg.train.aux_weight),
                    'teacher', needs)
    return {**metrics, 'stored_frames': len(frames)}


def _record_stores(out: Path, stores, ratio: float):
    """
    Write what the run learns from into ``out/label_stores.json``, or check a resumed run's.

    Each store by what made it (manifest: teacher, its precision, source and settings), not by
    its path, so a store moved or copied elsewhere still resumes the run; other stores or
    another ratio stop in one line rather than mix two runs in one checkpoint, and so does a
    run started without stores.
    """
    record = {'ratio': ratio, 'stores': [{key: store.manifest[key] for key in STORE_KEYS}
                                         for store in map(LabelStore.open, stores)]}
    path = out / STORES_RECORD
    if path.is_file():
        there = json.loads(path.read_text())
        # A record written before the precision was kept names none: it matches any.
        for old, new in zip(there.get('stores', []), record['stores']):
            old.setdefault('teacher_precision', new['teacher_precision'])
        if there != json.loads(json.dumps(record)):
            raise InputError(f'{out} trained from other label stores or another '
                             f'--labels-ratio ({path}); train into another --out')
        return
    if (out / 'last.ckpt').is_file():
        raise InputError(f'{out} holds a run trained without label stores (last.ckpt, no '
                         f'{STORES_RECORD}); train into another --out')
    out.mkdir(parents=True, exist_ok=True)
    write_json(path, record)


def refuse_stores_run(out):
    """Stop in one line where ``out`` holds a run trained with label stores (plain training)."""
    path = Path(out) / STORES_RECORD
    if path.is_file():
        raise InputError(f'{out} holds a run trained with label stores ({path}); resume it with '
                         f'the same --labels, or train into another --out')
