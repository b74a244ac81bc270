"""
Datasets from a config, and a sampler that makes every run reproducible and resumable.

Every sample is drawn with Python's ``random`` seeded by (seed, epoch, index), so a sample's
frame gap, scale, crop and flip do not depend on worker count, and a resumed run draws exactly
what an unbroken run would.
"""

from dataclasses import fields
from pathlib import Path
import random

import numpy as np
from stkd_ros.config import Config, DataConfig
from stkd_ros.data.classes import IGNORE_INDEX
from stkd_ros.data.transforms import train_transforms
from stkd_ros.errors import InputError
from stkd_ros.flow import build_flow
from stkd_ros.flow.cache import FlowCache
from stkd_ros.flow.occlusion import photometric_visible
from stkd_ros.labeling.store import LabelStore
import torch

#: The unlabeled stream's seed is the run's plus this: its own stream, so the labeled one
#: stays exactly what it is without unlabeled video.
UNLABELED_SEED_OFFSET = 7_919


def _world(s):
    """Return the world settings alone of a SyntheticDataConfig."""
    from stkd_ros.data.synthetic import SyntheticConfig
    return SyntheticConfig(**{f.name: getattr(s, f.name) for f in fields(SyntheticConfig)})


def build_clips(cfg: DataConfig, split: str, *, clip_length: int, gap):
    """Build the dataset of ``cfg`` for ``split`` ('train', 'val' or 'tune'); it returns Clips."""
    if cfg.dataset == 'synthetic':
        from stkd_ros.data.synthetic import SyntheticClips
        s = cfg.synthetic
        world = _world(s)
        clips = {'train': s.train_clips, 'val': s.val_clips, 'tune': s.tune_clips}[split]
        return SyntheticClips(world, split=split, clips=clips, gap=gap,
                              clip_length=clip_length, keys_per_clip=s.keys_per_clip,
                              label_every=s.label_every, cache_dir=s.render_cache)
    if split == 'tune':
        raise InputError(f'evaluation.split: tune is a split of the synthetic world; for '
                         f'{cfg.dataset}, tune on a split of your own')
    if cfg.root is None:
        raise InputError(f'data.root must name the {cfg.dataset} directory')
    if cfg.dataset == 'camvid':
        from stkd_ros.data.camvid import CamVidClips
        return CamVidClips(cfg.root, split=split, labels=cfg.camvid_labels, gap=gap,
                           clip_length=clip_length)
    from stkd_ros.data.cityscapes import CityscapesClips
    return CityscapesClips(cfg.root, split=split, gap=gap, clip_length=clip_length)


# The builders of unlabeled video; each returns a list of Clips datasets. cache_dir is where
# decoded bag frames go unless data.frame_cache says otherwise; the other sources need none.

def _unlabeled_streets(cfg: DataConfig, clip_length: int, gap, cache_dir):
    from stkd_ros.data.synthetic import SyntheticClips
    s = cfg.synthetic
    return [SyntheticClips(_world(s), split='unlabeled', clips=s.unlabeled_clips, gap=gap,
                           clip_length=clip_length, keys_per_clip=s.keys_per_clip,
                           cache_dir=s.render_cache)]


def _camvid_video(cfg: DataConfig, clip_length: int, gap, cache_dir):
    from stkd_ros.data.camvid import camvid_video
    return [camvid_video(cfg.root, gap=gap, clip_length=clip_length)]


def _cityscapes_video(cfg: DataConfig, clip_length: int, gap, cache_dir):
    from stkd_ros.data.cityscapes import cityscapes_video
    return [cityscapes_video(cfg.root, gap=gap, clip_length=clip_length)]


def _recorded_drives(cfg: DataConfig, clip_length: int, gap, cache_dir):
    from stkd_ros.data.bag_video import BagVideo
    cache = cfg.frame_cache or cache_dir
    return [BagVideo(bag, cfg.unlabeled_topic, cache_dir=cache, gap=gap,
                     clip_length=clip_length) for bag in cfg.unlabeled_bags]


#: Each source of unlabeled video: whether a config names it, and what builds its datasets.
#: One table, so that asking whether there is any video and building it cannot disagree.
UNLABELED_SOURCES = (
    (lambda cfg: cfg.dataset == 'synthetic' and cfg.synthetic.unlabeled_clips,
     _unlabeled_streets),
    (lambda cfg: cfg.dataset == 'camvid' and cfg.unlabeled_video, _camvid_video),
    (lambda cfg: cfg.dataset == 'cityscapes' and cfg.unlabeled_video, _cityscapes_video),
    (lambda cfg: cfg.unlabeled_bags, _recorded_drives),
)


def has_unlabeled_video(cfg: DataConfig) -> bool:
    """Whether ``cfg`` names unlabeled video (what :func:`build_unlabeled` builds)."""
    return any(names(cfg) for names, _ in UNLABELED_SOURCES)


def build_unlabeled(cfg: DataConfig, *, clip_length: int, gap, cache_dir):
    """
    Build the unlabeled video of ``cfg``.

    That is never-labeled synthetic streets, the video frames of CamVid or Cityscapes
    (``data.unlabeled_video``), and recorded drives (``data.unlabeled_bags``).

    Returns a dataset of Clips whose labels are all 255, or None when there is none.
    """
    parts = [part for names, build in UNLABELED_SOURCES if names(cfg)
             for part in build(cfg, clip_length, gap, cache_dir)]
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else torch.utils.data.ConcatDataset(parts)


class SeededClips(torch.utils.data.Dataset):
    """Wraps a clip dataset; items are (epoch, index) and randomness is seeded by them."""

    def __init__(self, clips, transform, seed: int):
        self.clips, self.transform, self.seed = clips, transform, seed

    def __len__(self):
        return len(self.clips)

    def __getitem__(self, key):
        epoch, index = key
        random.seed(hash((self.seed, epoch, index)))
        return self.transform(self.clips[index])


class ResumableBatchSampler(torch.utils.data.Sampler):
    """
    Endless batches of (epoch, index), reshuffled each epoch from (seed, epoch).

    ``start_step`` skips the batches already trained on; ``rank``/``world_size`` give each
    process of a distributed run its own shard of every epoch.
    """

    def __init__(self, size: int, batch_size: int, seed: int, start_step: int = 0,
                 rank: int = 0, world_size: int = 1):
        self.per_rank = size // world_size
        self.batches = self.per_rank // batch_size
        if self.batches == 0:
            raise InputError(f'dataset of {size} samples is too small for batch size '
                             f'{batch_size} on {world_size} process(es)')
        self.size, self.batch_size, self.seed = size, batch_size, seed
        self.start_step, self.rank, self.world_size = start_step, rank, world_size

    def __iter__(self):
        epoch, offset = divmod(self.start_step, self.batches)
        while True:
            g = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
            perm = torch.randperm(self.size, generator=g)[:self.per_rank * self.world_size]
            mine = perm[self.rank::self.world_size].tolist()
            for b in range(offset, self.batches):
                chunk = mine[b * self.batch_size:(b + 1) * self.batch_size]
                yield [(epoch, i) for i in chunk]
            epoch, offset = epoch + 1, 0

    def __len__(self):
        return self.batches


def training_flow(cfg: Config, out_dir):
    """Where training clips get their flow: the synthetic ground truth, or a cached estimator."""
    f = cfg.distill.flow
    estimator = build_flow(f.method, **f.args)
    if f.method == 'ground_truth':
        return estimator
    data = cfg.data
    key = data.dataset + '|' + (str(data.root) if data.root else str(data.synthetic))
    return FlowCache(f.cache or Path(out_dir) / 'flow_cache', estimator, key)


class FlowClips:
    """
    Attach the flow from frame 0 to frame 1 to every clip, from any flow source.

    With no source (a task that reads no flow) every clip's own flow is dropped: the
    synthetic world's clips bring theirs and a bag's none, and the samples of one batch
    must have the same entries.
    """

    def __init__(self, clips, source=None):
        self.clips, self.source = clips, source

    def __len__(self):
        return len(self.clips)

    def __getitem__(self, index):
        clip = self.clips[index]
        clip.flows = None if self.source is None else self.source.between(clip, 0, 1)[None]
        return clip


class StoreTargets:
    """
    Give every clip its frames' classes and confidence from a label store (``targets``).

    ``store`` None gives the clips of a stream the store does not cover (the labeled one)
    targets of 255 and confidence 0, so that every sample of a batch has both.
    """

    def __init__(self, clips, store=None):
        self.clips, self.store = clips, store

    def __len__(self):
        return len(self.clips)

    def __getitem__(self, index):
        clip = self.clips[index]
        if self.store is None:
            clip.targets = np.full(clip.labels.shape, IGNORE_INDEX, np.uint8)
            clip.confidence = np.zeros(clip.labels.shape, np.uint8)
            return clip
        read = [self.store.read(clip.sequence, t) for t in clip.times]
        clip.targets = np.stack([labels for labels, _ in read])
        clip.confidence = np.stack([confidence for _, confidence in read])
        return clip


class VisibleAlongFlow:
    """
    A clip transform: mark the pixels of frame 0 that frame 1 shows too (``clip.visible``).

    The photometric check (colour constancy along the flow) on the uint8 frames after the
    geometric transforms, and nothing on crop padding: the pixels the temporal term trusts.
    """

    def __init__(self, threshold: float):
        self.threshold = threshold

    def __call__(self, clip):
        seen = photometric_visible(clip.frames[0], clip.frames[1], clip.flows[0], self.threshold)
        clip.visible = seen if clip.valid is None else seen & clip.valid
        return clip


class MixedBatches(torch.utils.data.Sampler):
    """
    Batches of labeled keys, each followed by a batch of unlabeled keys when there are any.

    The two streams are drawn from their own samplers, so the labeled part of every batch is
    what a run without unlabeled video draws with the same seed.
    """

    def __init__(self, labeled: ResumableBatchSampler, unlabeled=None):
        self.labeled, self.unlabeled = labeled, unlabeled

    def __iter__(self):
        unlabeled = iter(self.unlabeled) if self.unlabeled is not None else None
        for keys in self.labeled:
            batch = [('labeled',) + k for k in keys]
            if unlabeled is not None:
                batch += [('unlabeled',) + k for k in next(unlabeled)]
            yield batch

    def __len__(self):
        return len(self.labeled)


class Streams(torch.utils.data.Dataset):
    """Items are (stream, epoch, index): one SeededClips per stream."""

    def __init__(self, **streams):
        self.streams = streams

    def __getitem__(self, key):
        stream, epoch, index = key
        return self.streams[stream][(epoch, index)]


def train_loader(cfg: DataConfig, *, clip_length: int, batch_size: int, seed: int,
                 start_step: int, workers: int, rank: int = 0, world_size: int = 1,
                 flow=None, photometric_threshold: float = 0.1, unlabeled: bool = False,
                 cache_dir=None):
    """
    Build an endless, seeded, resumable loader of training batches (dicts of tensors).

    With ``unlabeled`` (a task that learns from unlabeled frames) and unlabeled video in
    ``cfg``, each batch of ``batch_size`` labeled clips is followed by
    ``data.unlabeled_ratio`` times as many unlabeled ones, drawn with their own seed. With a
    ``flow`` source, each clip brings its flow t -> t+k (``flows``) and the pixels that pass
    the photometric check at ``photometric_threshold`` (``visible``).
    """
    gap = tuple(cfg.gap)
    transform = train_transforms(
        crop_size=tuple(cfg.crop_size), scale_range=tuple(cfg.scale_range),
        extra=[VisibleAlongFlow(photometric_threshold)] if flow is not None else ())
    clips = build_clips(cfg, 'train', clip_length=clip_length, gap=gap)
    extra = (build_unlabeled(cfg, clip_length=clip_length, gap=gap, cache_dir=cache_dir)
             if unlabeled else None)
    if cfg.labels and extra is not None:
        # The unlabeled clips' classes, labeled once offline (stkd label).
        clips, extra = StoreTargets(clips), StoreTargets(extra, LabelStore.open(cfg.labels))
    clips = FlowClips(clips, flow)
    extra = FlowClips(extra, flow) if extra is not None else None
    sampler = MixedBatches(ResumableBatchSampler(len(clips), batch_size, seed, start_step,
                                                 rank, world_size))
    streams = {'labeled': SeededClips(clips, transform, seed)}
    if extra is not None:
        useed = seed + UNLABELED_SEED_OFFSET
        sampler.unlabeled = ResumableBatchSampler(
            len(extra), max(1, round(cfg.unlabeled_ratio * batch_size)), useed, start_step,
            rank, world_size)
        streams['unlabeled'] = SeededClips(extra, transform, useed)
    return torch.utils.data.DataLoader(
        Streams(**streams), batch_sampler=sampler, num_workers=workers,
        persistent_workers=workers > 0)


def warm_render_cache(cfg: DataConfig, *, eval_split: str, workers: int) -> int:
    """
    Render every view of the synthetic world of ``cfg`` into its render cache, in parallel.

    The views are every one that training (one- and two-frame tasks) and scoring on
    ``eval_split`` can draw; ``workers`` processes share them. Returns how many frames were
    rendered (a cached one costs a file check).
    """
    if cfg.dataset != 'synthetic' or not cfg.synthetic.render_cache:
        return 0
    from stkd_ros.data.render_warm import warm_all
    gap = tuple(cfg.gap)
    datasets = [build_clips(cfg, eval_split, clip_length=2, gap=cfg.eval_gap)]
    for length in (1, 2):
        datasets.append(build_clips(cfg, 'train', clip_length=length, gap=gap))
        unlabeled = build_unlabeled(cfg, clip_length=length, gap=gap, cache_dir=None)
        if unlabeled is not None:
            datasets.append(unlabeled)
    return warm_all(datasets, workers)
