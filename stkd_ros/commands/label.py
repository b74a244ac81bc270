"""
`stkd label`: the teacher labels every frame of the config's unlabeled video, once, offline.

The video is what distillation would learn from (``build_unlabeled``: the synthetic world's
never-labeled streets, CamVid's or Cityscapes' video, the bags given). Each frame's labels
come from the teacher's test-time-augmented probabilities, fused with its neighbours' along
the flow (the config's ``label`` section), and go into a label store
(``stkd_ros.labeling.store``). A killed run resumes; ``shard`` (I, N) labels sequences
i % N == I, so several machines fill one store: given as ``I/N``, or under torchrun taken
from ``RANK`` and ``WORLD_SIZE`` (each rank on GPU ``LOCAL_RANK``). Ranks share nothing but
the store's folder: each writes the same manifest, whole, and its own sequences. When the
store is complete and ground truth exists, the labels are scored (``quality.json``).
``review`` writes the first sequences this run labels as video (``review/<sequence>.mp4``:
frame, labels, confidence side by side).
"""

import json
import logging
import os
from pathlib import Path
import time
from typing import Optional

from stkd_ros.config import load_config
from stkd_ros.data.unlabeled import build_unlabeled, with_bags
from stkd_ros.errors import InputError
from stkd_ros.labeling.fusion import EstimatedLinks, ExactLinks
from stkd_ros.labeling.identity import file_sha256, source_identity
from stkd_ros.labeling.labeler import hard_labels, label_sequence
from stkd_ros.labeling.passes import TeacherPasses
from stkd_ros.labeling.quality import store_quality
from stkd_ros.labeling.sources import resolve_shard, shard_of, video_sequences
from stkd_ros.labeling.store import (check_out, clear_partial, done_frames, first_missing,
                                     labeled_frames, LabelStore, new_manifest, prepare_store,
                                     QUALITY, REVIEW, write_frame, write_json)
from stkd_ros.model_file import load_model_file, read_metadata
from stkd_ros.report.label_review import write_label_review
import torch
from tqdm import tqdm

log = logging.getLogger(__name__)

#: The review video's rate: slower than a camera's, so each frame's labels can be read.
REVIEW_FPS = 10.0


def dataset_classes(dataset: str) -> tuple:
    if dataset == 'cityscapes':
        from stkd_ros.data.cityscapes import CITYSCAPES_CLASSES
        return CITYSCAPES_CLASSES
    from stkd_ros.data.classes import CAMVID_CLASSES
    return CAMVID_CLASSES


def label(config, teacher, out, *, bags=(), topic=None, shard: Optional[str] = None,
          device: str = 'auto', overrides=(), review: int = 0, progress: bool = True) -> dict:
    """
    Label the unlabeled video of ``config`` (+ ``bags``) into the store ``out``.

    Returns a summary: frames labeled now, their seconds, the store's state, the review
    videos written (of the first ``review`` sequences of this shard) and, once the store is
    complete, its quality report where ground truth exists.
    """
    if review < 0:
        raise InputError(f'--review: a number of sequences (0 or more), got {review}')
    index, count = resolve_shard(shard, os.environ)
    dev = _device(device, int(os.environ.get('LOCAL_RANK', '0')))
    cfg, meta = _checked_inputs(config, teacher, bags, topic, overrides)
    settings = cfg.label
    oracle = settings.fusion_radius > 0 and settings.fusion_flow == 'ground_truth'
    model, _ = load_model_file(teacher, dev)
    passes = TeacherPasses(model, meta, scales=settings.scales, flip=settings.flip, device=dev,
                           precision=cfg.teacher.precision)
    check_out(out)
    # A drive is decoded when its frames are first read: by the shard that labels it.
    video = build_unlabeled(cfg.data, clip_length=1, gap=1)
    if video is None:
        raise InputError(f'{config} has no unlabeled video to label: set '
                         f'data.synthetic.unlabeled_clips (synthetic), data.unlabeled_video: '
                         f'true (camvid, cityscapes), or give --bag PATH --topic TOPIC')
    sequences = video_sequences(video)
    manifest = prepare_store(out, new_manifest(
        teacher_sha256=file_sha256(teacher), teacher_path=str(teacher), classes=meta['classes'],
        source=source_identity(cfg.data), settings=cfg.to_dict()['label'], oracle=oracle,
        sequences=sequences, teacher_precision=passes.precision))
    if oracle:
        log.warning("ORACLE: fusing along the synthetic world's exact flow; the store says "
                    'so (manifest oracle: true)')

    links = _links(settings, dev) if settings.fusion_radius > 0 else None
    start = time.perf_counter()
    mine = shard_of(sequences, index, count)
    labeled = _label_frames(out, mine, passes, links, settings.fusion_radius, settings.batch,
                            f'label {index}/{count}', progress)
    seconds = time.perf_counter() - start
    reviews = [_write_review(out, s, meta) for s in mine[:review]]
    missing = first_missing(out, manifest)
    return {'store': str(out), 'shard': [index, count], 'frames_labeled': labeled,
            'seconds': seconds, 'seconds_per_frame': seconds / labeled if labeled else None,
            'frames': sum(e['frames'] for e in manifest['sequences'].values()),
            'missing': missing[2] if missing else 0, 'oracle': oracle, 'device': str(dev),
            'passes': passes.passes, 'reviews': [str(p) for p in reviews],
            'quality': _quality(out, sequences, progress) if missing is None else None}


def _checked_inputs(config, teacher, bags, topic, overrides):
    """Return the config (bags added) and the teacher's metadata, after the cheap checks."""
    if not Path(teacher).is_file():
        raise FileNotFoundError(f'teacher model file not found: {teacher}')
    # As stkd distill's --unlabeled-topic: the topic of every bag, the config's included.
    topic_set = [f'data.unlabeled_topic={json.dumps(topic)}'] if topic else []
    cfg = load_config(config, list(overrides) + topic_set)
    data = cfg.data
    data.unlabeled_bags = with_bags(data.unlabeled_bags, bags)
    if bags and not data.unlabeled_topic:
        raise InputError('--bag needs --topic TOPIC: the image topic to label (the config '
                         'names none in data.unlabeled_topic)')
    if topic and not data.unlabeled_bags:
        raise InputError(f'--topic {topic}: no bags to read it from; give --bag PATH or set '
                         f'data.unlabeled_bags in {config}')
    exact = cfg.label.fusion_radius > 0 and cfg.label.fusion_flow == 'ground_truth'
    if exact and (data.dataset != 'synthetic' or data.unlabeled_bags):
        raise InputError("label.fusion_flow: ground_truth is the synthetic world's exact flow "
                         '(an oracle); recorded video has none: use dis or raft')
    meta = read_metadata(teacher)
    expected = list(dataset_classes(data.dataset))
    if list(meta['classes']) != expected:
        raise InputError(f'teacher {teacher} predicts {len(meta["classes"])} classes '
                         f'({", ".join(meta["classes"][:4])}, ...), the {data.dataset} data '
                         f'has {len(expected)} ({", ".join(expected[:4])}, ...)')
    return cfg, meta


def _label_frames(out, sequences, passes, links, radius: int, batch: int, desc: str,
                  progress: bool) -> int:
    """Label every frame of ``sequences`` the store lacks; return how many."""
    todo = [(s, sorted(set(range(s.frames)) - done_frames(out, s.name))) for s in sequences]
    labeled = 0
    with tqdm(total=sum(s.frames for s in sequences), unit='frame', desc=desc,
              initial=sum(s.frames - len(times) for s, times in todo), dynamic_ncols=True,
              disable=None if progress else True) as bar:
        for sequence, times in todo:
            if not times:
                continue
            clear_partial(out, sequence.name)
            for t, probs in label_sequence(sequence, passes, times, radius=radius, links=links,
                                           batch=batch):
                write_frame(out, sequence.name, t, *hard_labels(probs))
                labeled += 1
                bar.update()
    return labeled


def _write_review(out, sequence, meta) -> Path:
    """Write ``sequence`` of the store as review video; return its path."""
    path = Path(out) / REVIEW / f'{sequence.name}.mp4'
    path.parent.mkdir(exist_ok=True)
    write_label_review(labeled_frames(out, sequence.name, lambda t: sequence.read(t)[0]), path,
                       classes=meta['classes'], palette=meta['palette'], fps=REVIEW_FPS,
                       total=sequence.frames)
    return path


def _device(name: str, local_rank: int) -> torch.device:
    if name.startswith('cuda') and not torch.cuda.is_available():
        raise InputError(f'--device {name}: CUDA is not available here')
    if name in ('auto', 'cuda'):
        return torch.device(f'cuda:{local_rank}' if torch.cuda.is_available() else 'cpu')
    return torch.device(name)


def _links(settings, device):
    if settings.fusion_flow == 'ground_truth':
        return ExactLinks(device)
    from stkd_ros.flow import build_flow
    args = dict(settings.fusion_flow_args)
    if settings.fusion_flow == 'raft':
        args.setdefault('device', str(device))
    return EstimatedLinks(build_flow(settings.fusion_flow, **args), device)


def _quality(out, sequences, progress: bool):
    """Score a complete store, or return the report an earlier run kept."""
    store = LabelStore.open(out)
    if store.quality is not None:
        return store.quality
    with torch.inference_mode():
        quality = store_quality(store, sequences, progress=progress)
    if quality is not None:
        write_json(Path(out) / QUALITY, quality)
    return quality
