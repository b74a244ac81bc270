"""
`stkd label`: the teacher labels every frame of the config's unlabeled video, once, offline.

The video is what distillation would learn from (``build_unlabeled``: the synthetic world's
never-labeled streets, CamVid's or Cityscapes' video, the bags given). Each frame's labels
come from the teacher's test-time-augmented probabilities, fused with its neighbours' along
the flow (the config's ``label`` section), and go into a label store
(``stkd_ros.labeling.store``). A killed run resumes; ``shard`` (I, N) labels sequences
i % N == I, so several machines fill one store. When the store is complete and ground truth
exists, the labels are scored (``quality.json``).
"""

import logging
from pathlib import Path
import time

from stkd_ros.config import load_config
from stkd_ros.errors import InputError
from stkd_ros.labeling.fusion import EstimatedLinks, ExactLinks
from stkd_ros.labeling.identity import file_sha256, source_identity
from stkd_ros.labeling.labeler import hard_labels, label_sequence
from stkd_ros.labeling.passes import TeacherPasses
from stkd_ros.labeling.quality import store_quality
from stkd_ros.labeling.sources import parse_shard, shard_of, video_sequences
from stkd_ros.labeling.store import (check_out, clear_partial, done_frames, first_missing,
                                     LabelStore, new_manifest, prepare_store, QUALITY,
                                     write_frame, write_json)
from stkd_ros.model_file import load_model_file, read_metadata
from stkd_ros.training.data import build_unlabeled
from stkd_ros.training.run import resolve_device
import torch
from tqdm import tqdm

log = logging.getLogger(__name__)


def dataset_classes(dataset: str) -> tuple:
    if dataset == 'cityscapes':
        from stkd_ros.data.cityscapes import CITYSCAPES_CLASSES
        return CITYSCAPES_CLASSES
    from stkd_ros.data.classes import CAMVID_CLASSES
    return CAMVID_CLASSES


def label(config, teacher, out, *, bags=(), topic=None, shard: str = '0/1',
          device: str = 'auto', overrides=(), progress: bool = True) -> dict:
    """
    Label the unlabeled video of ``config`` (+ ``bags``) into the store ``out``.

    Returns a summary: frames labeled now, their seconds, the store's state and, once the
    store is complete, its quality report where ground truth exists.
    """
    index, count = parse_shard(shard)
    if bags and not topic:
        raise InputError('--bag needs --topic TOPIC: the image topic to label')
    if topic and not bags:
        raise InputError('--topic names the image topic of --bag PATH; give the bags too')
    if not Path(teacher).is_file():
        raise FileNotFoundError(f'teacher model file not found: {teacher}')
    cfg = load_config(config, overrides)
    data, settings = cfg.data, cfg.label
    data.unlabeled_bags = list(data.unlabeled_bags) + [
        str(b) for b in bags if str(b) not in data.unlabeled_bags]
    data.unlabeled_topic = topic or data.unlabeled_topic
    oracle = settings.fusion_radius > 0 and settings.fusion_flow == 'ground_truth'
    if oracle and (data.dataset != 'synthetic' or data.unlabeled_bags):
        raise InputError("label.fusion_flow: ground_truth is the synthetic world's exact flow "
                         '(an oracle); recorded video has none: use dis or raft')
    meta = read_metadata(teacher)
    expected = list(dataset_classes(data.dataset))
    if list(meta['classes']) != expected:
        raise InputError(f'teacher {teacher} predicts {len(meta["classes"])} classes '
                         f'({", ".join(meta["classes"][:4])}, ...), the {data.dataset} data '
                         f'has {len(expected)} ({", ".join(expected[:4])}, ...)')
    check_out(out)
    video = build_unlabeled(data, clip_length=1, gap=1,
                            cache_dir=data.frame_cache or Path(out) / 'frame_cache')
    if video is None:
        raise InputError(f'{config} has no unlabeled video to label: set '
                         f'data.synthetic.unlabeled_clips (synthetic), data.unlabeled_video: '
                         f'true (camvid, cityscapes), or give --bag PATH --topic TOPIC')
    sequences = video_sequences(video)
    manifest = prepare_store(out, new_manifest(
        teacher_sha256=file_sha256(teacher), teacher_path=str(teacher), classes=expected,
        source=source_identity(data), settings=cfg.to_dict()['label'], oracle=oracle,
        sequences=sequences))
    if oracle:
        log.warning("ORACLE: fusing along the synthetic world's exact flow; the store says "
                    'so (manifest oracle: true)')

    dev = resolve_device(device)
    model, _ = load_model_file(teacher, dev)
    passes = TeacherPasses(model, meta, scales=settings.scales, flip=settings.flip, device=dev)
    links = _links(settings, dev) if settings.fusion_radius > 0 else None
    mine = shard_of(sequences, index, count)
    todo = [(s, sorted(set(range(s.frames)) - done_frames(out, s.name))) for s in mine]
    labeled, start = 0, time.perf_counter()
    with tqdm(total=sum(s.frames for s in mine), initial=sum(s.frames - len(ts) for s, ts in todo),
              desc=f'label {index}/{count}', unit='frame', disable=None if progress else True,
              dynamic_ncols=True) as bar:
        for sequence, times in todo:
            if not times:
                continue
            clear_partial(out, sequence.name)
            for t, probs in label_sequence(sequence, passes, times,
                                           radius=settings.fusion_radius, links=links):
                write_frame(out, sequence.name, t, *hard_labels(probs))
                labeled += 1
                bar.update()
    seconds = time.perf_counter() - start
    summary = {'store': str(out), 'shard': [index, count], 'frames_labeled': labeled,
               'seconds': seconds, 'seconds_per_frame': seconds / labeled if labeled else None,
               'frames': sum(e['frames'] for e in manifest['sequences'].values()),
               'oracle': oracle, 'device': str(dev), 'passes': passes.passes}
    missing = first_missing(out, manifest)
    summary['missing'] = missing[2] if missing else 0
    if missing is None:
        summary['quality'] = _quality(out, sequences, progress)
    return summary


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
