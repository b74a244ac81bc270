"""
`stkd propagate-labels`: the labeled frames' truth carried along the flow, into a label store.

Each labeled sequence of the config's data (``stkd_ros.labeling.labeled_video``: the synthetic
world's training streets, Cityscapes' snippets, CamVid's runs) gets every frame's labels
carried from its nearest labeled frame (``stkd_ros.labeling.propagation``), pixels that fail
the occlusion check left unlabeled (255, confidence 0; kept pixels have confidence 255). The
store is the one `stkd label` writes (``stkd_ros.labeling.store``), so it is read, resumed
and sharded the same way: a killed run writes the frames it lacks (following each chain
from its labeled frame again, so the files are what an unbroken run writes). Once complete,
where truth exists beyond the labeled frames (the synthetic world), it is scored by distance
from the labeled frame (``quality.json``).

The flow is one a user has: DIS (the default, OpenCV's medium preset) or RAFT (weights as a
local file); ``ground_truth`` is the synthetic world's exact flow, an oracle the store names.
"""

import logging
import os
from pathlib import Path
import time
from typing import Optional

import numpy as np
from stkd_ros.commands.label import dataset_classes
from stkd_ros.config import load_config
from stkd_ros.data.classes import IGNORE_INDEX
from stkd_ros.errors import InputError
from stkd_ros.flow.pairs import EXACT_FLOW_THRESHOLD
from stkd_ros.labeling.identity import CARRIED_TRUTH, labeled_video_identity
from stkd_ros.labeling.labeled_video import labeled_sequences
from stkd_ros.labeling.propagation import carry_sequence, CarryFlow
from stkd_ros.labeling.quality import quality_by_distance
from stkd_ros.labeling.sources import resolve_shard, shard_of
from stkd_ros.labeling.store import (check_out, clear_partial, done_frames, first_missing,
                                     LabelStore, new_manifest, prepare_store, QUALITY,
                                     write_frame, write_json)
from tqdm import tqdm
import yaml

log = logging.getLogger(__name__)

#: The defaults: DIS at OpenCV's medium preset (its own default), the photometric check.
#: On the protocol world's 40 labeled streets (96x192) it kept more pixels than the
#: forward-backward check, and right more often: label mIoU 0.914 / 0.833 / 0.754 on 93% /
#: 80% / 68% of the pixels 1 / 4 / 8 frames from the labeled one, against 0.879 / 0.786 /
#: 0.696 on 84% / 66% / 55% (both checks at once: about the photometric one's mIoU on 80% /
#: 58% / 46%; a threshold of 0.05: mIoU 0.927 / 0.859 / 0.781 on 87% / 69% / 55%).
FLOW = 'dis'
CHECK = 'photometric'
#: The photometric check's threshold: the one evaluation uses with exact flow.
THRESHOLD = EXACT_FLOW_THRESHOLD


def parse_flow_args(items) -> dict:
    """``['preset=fast', 'weights=raft.pth']`` -> settings of the flow (values read as YAML)."""
    settings = {}
    for item in items:
        key, sep, value = str(item).partition('=')
        if not sep or not key.strip():
            raise InputError(f'--flow-arg: expected KEY=VALUE (e.g. preset=fast), got {item!r}')
        settings[key.strip()] = yaml.safe_load(value) if value else None
    return settings


def propagate_labels(config, out, *, flow: str = FLOW, flow_args=(), check: str = CHECK,
                     threshold: float = THRESHOLD, shard: Optional[str] = None, overrides=(),
                     progress: bool = True) -> dict:
    """
    Carry the labeled frames of ``config``'s data to their sequences' frames, into ``out``.

    Returns a summary: frames carried now and their seconds, the store's state and, once it
    is complete, its quality report where truth exists beyond the labeled frames.
    """
    index, count = resolve_shard(shard, os.environ)
    cfg = load_config(config, overrides)
    settings = parse_flow_args(flow_args)
    try:
        carrier = CarryFlow(flow, check=check, threshold=threshold, **settings)
    except TypeError as exc:     # a setting the estimator does not take
        raise InputError(f'--flow-arg: {flow} flow takes no such setting ({exc})') from None
    if carrier.oracle and cfg.data.dataset != 'synthetic':
        raise InputError("--flow ground_truth is the synthetic world's exact flow (an oracle); "
                         f'{cfg.data.dataset} video has none: use dis or raft')
    check_out(out)
    sequences = labeled_sequences(cfg.data)
    manifest = prepare_store(out, new_manifest(
        teacher_sha256=CARRIED_TRUTH, teacher_path=None,
        classes=dataset_classes(cfg.data.dataset), source=labeled_video_identity(cfg.data),
        settings={'labels': 'carried along the flow', 'flow': flow, 'flow_args': settings,
                  'check': check, 'threshold': threshold},
        oracle=carrier.oracle, sequences=[s.sequence for s in sequences],
        teacher_precision=None))
    if carrier.oracle:
        log.warning("ORACLE: carrying along the synthetic world's exact flow; the store says "
                    'so (manifest oracle: true)')
    start = time.perf_counter()
    carried = _carry_all(out, shard_of(sequences, index, count), carrier,
                         f'propagate {index}/{count}', progress)
    seconds = time.perf_counter() - start
    missing = first_missing(out, manifest)
    return {'store': str(out), 'shard': [index, count], 'frames_carried': carried,
            'seconds': seconds, 'seconds_per_frame': seconds / carried if carried else None,
            'frames': sum(e['frames'] for e in manifest['sequences'].values()),
            'missing': missing[2] if missing else 0, 'oracle': carrier.oracle,
            'quality': _quality(out, sequences, progress) if missing is None else None}


def _carry_all(out, sequences, carrier: CarryFlow, desc: str, progress: bool) -> int:
    """Carry every frame of ``sequences`` the store lacks; return how many were written."""
    todo = [(s, set(range(s.sequence.frames)) - done_frames(out, s.name)) for s in sequences]
    written = 0
    with tqdm(total=sum(s.sequence.frames for s in sequences), unit='frame', desc=desc,
              initial=sum(s.sequence.frames - len(times) for s, times in todo),
              dynamic_ncols=True, disable=None if progress else True) as bar:
        for sequence, times in todo:
            if not times:
                continue
            clear_partial(out, sequence.name)
            for t, labels, _ in carry_sequence(sequence.sequence, sequence.labels(), carrier,
                                               todo=times):
                kept = np.where(labels == IGNORE_INDEX, 0, 255).astype(np.uint8)
                write_frame(out, sequence.name, t, labels, kept)
                written += 1
                bar.update()
    return written


def _quality(out, sequences, progress: bool):
    """Score a complete store, or return the report an earlier run kept."""
    store = LabelStore.open(out)
    if store.quality is not None:
        return store.quality
    quality = quality_by_distance(store, sequences, progress=progress)
    if quality is not None:
        write_json(Path(out) / QUALITY, quality)
    return quality
