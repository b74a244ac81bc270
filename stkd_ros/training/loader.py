"""The loader of training batches: a config's clips, with what the run needs of them."""

from stkd_ros.config import DataConfig
from stkd_ros.data.datasets import build_clips
from stkd_ros.data.sampling import MixedBatches, ResumableBatchSampler, SeededClips, Streams
from stkd_ros.data.store_targets import StoreTargets
from stkd_ros.data.transforms import train_transforms
from stkd_ros.data.unlabeled import build_unlabeled
from stkd_ros.labeling.store import LabelStore
from stkd_ros.training.clip_flow import FlowClips, training_flow, VisibleAlongFlow
from stkd_ros.training.data_needs import DataNeeds
from stkd_ros.training.store_frames import stores_as_clips
import torch

#: The unlabeled stream's seed is the run's plus this: its own stream, so the labeled one
#: stays exactly what it is without unlabeled video.
UNLABELED_SEED_OFFSET = 7_919


def train_loader(cfg: DataConfig, needs: DataNeeds, *, batch_size: int, seed: int,
                 start_step: int, workers: int, rank: int = 0, world_size: int = 1,
                 run_dir=None):
    """
    Build an endless, seeded, resumable loader of training batches (dicts of tensors).

    Each batch holds ``batch_size`` labeled clips of ``needs.frames`` frames; with
    ``needs.unlabeled`` and unlabeled video in ``cfg``, they are followed by
    ``data.unlabeled_ratio`` times as many unlabeled ones, drawn with their own seed. With
    ``needs.flow``, each clip brings its flow t -> t+k (``flows``) and the pixels that pass
    the photometric check (``visible``); with ``needs.store``, the store's classes
    (``targets``, ``confidence``); with ``needs.stores``, the second stream is the stores'
    frames with their labels, ``needs.stores_ratio`` times as many. Flow is cached in
    ``run_dir`` unless the config names a cache; recorded drives are decoded into the shared
    frame cache at their first read.
    """
    gap, frames = tuple(cfg.gap), needs.frames
    flow = needs.flow
    transform = train_transforms(
        crop_size=tuple(cfg.crop_size), scale_range=tuple(cfg.scale_range),
        extra=[VisibleAlongFlow(flow.photometric_threshold)] if flow is not None else ())
    clips = build_clips(cfg, 'train', clip_length=frames, gap=gap)
    extra = build_unlabeled(cfg, clip_length=frames, gap=gap) if needs.unlabeled else None
    if needs.store and extra is not None:
        # The unlabeled clips' classes, labeled once offline (stkd label).
        clips, extra = StoreTargets(clips), StoreTargets(extra, LabelStore.open(needs.store))
    source = training_flow(flow, cfg, run_dir) if flow is not None else None
    clips = FlowClips(clips, source)
    extra = FlowClips(extra, source) if extra is not None else None
    ratio = cfg.unlabeled_ratio
    if needs.stores:
        # A teacher's self-training: the stores' frames, labeled, in the second stream.
        classes = build_clips(cfg, 'val', clip_length=1, gap=1).classes
        extra, ratio = FlowClips(stores_as_clips(cfg, needs.stores, classes)), needs.stores_ratio
    sampler = MixedBatches(ResumableBatchSampler(len(clips), batch_size, seed, start_step,
                                                 rank, world_size))
    streams = {'labeled': SeededClips(clips, transform, seed)}
    if extra is not None:
        useed = seed + UNLABELED_SEED_OFFSET
        sampler.unlabeled = ResumableBatchSampler(
            len(extra), max(1, round(ratio * batch_size)), useed, start_step, rank,
            world_size)
        streams['unlabeled'] = SeededClips(extra, transform, useed)
    return torch.utils.data.DataLoader(
        Streams(**streams), batch_sampler=sampler, num_workers=workers,
        persistent_workers=workers > 0)
