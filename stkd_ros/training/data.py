"""
Datasets from a config, and a sampler that makes every run reproducible and resumable.

Every sample is drawn with Python's ``random`` seeded by (seed, epoch, index), so a sample's
frame gap, scale, crop and flip do not depend on worker count, and a resumed run draws exactly
what an unbroken run would.
"""

import random

from stkd_ros.config import DataConfig
from stkd_ros.data.transforms import train_transforms
from stkd_ros.flow.cache import FlowCache
import torch


def build_clips(cfg: DataConfig, split: str, *, clip_length: int, gap,
                learns_from_unlabeled: bool = False):
    """
    Build the dataset of ``cfg`` for ``split`` ('train' or 'val'); it returns Clips.

    ``learns_from_unlabeled`` lets training clips start at unlabeled frames, in the share
    ``data.synthetic.unlabeled_keys`` gives; a task without it draws labeled key frames only.
    """
    if cfg.dataset == 'synthetic':
        from stkd_ros.data.synthetic import SyntheticClips, SyntheticConfig
        s = cfg.synthetic
        world = SyntheticConfig(height=s.height, width=s.width, frames=s.frames,
                                difficulty=s.difficulty, seed=s.seed)
        clips = s.train_clips if split == 'train' else s.val_clips
        return SyntheticClips(world, split=split, clips=clips, gap=gap,
                              clip_length=clip_length, keys_per_clip=s.keys_per_clip,
                              label_every=s.label_every,
                              unlabeled_keys=s.unlabeled_keys if learns_from_unlabeled else 0.0)
    if cfg.dataset not in ('camvid', 'cityscapes'):
        raise ValueError(f'data.dataset: unknown dataset {cfg.dataset!r}; expected synthetic, '
                         f'camvid or cityscapes')
    if cfg.root is None:
        raise ValueError(f'data.root must name the {cfg.dataset} directory')
    if cfg.dataset == 'camvid':
        from stkd_ros.data.camvid import CamVidClips
        return CamVidClips(cfg.root, split=split, labels=cfg.camvid_labels, gap=gap,
                           clip_length=clip_length)
    from stkd_ros.data.cityscapes import CityscapesClips
    return CityscapesClips(cfg.root, split=split, gap=gap, clip_length=clip_length)


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
            raise ValueError(f'dataset of {size} samples is too small for batch size '
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


class FlowClips:
    """Attach flow from frame 0 to frame 1 to every clip (from a cache or the ground truth)."""

    def __init__(self, clips, source):
        self.clips, self.source = clips, source

    def __len__(self):
        return len(self.clips)

    def __getitem__(self, index):
        clip = self.clips[index]
        if isinstance(self.source, FlowCache):
            clip.flows = self.source.between(clip, 0, 1, clip.gap)[None]
        else:
            clip.flows = self.source.between(clip, 0, 1)[None]
        return clip


def train_loader(cfg: DataConfig, *, clip_length: int, batch_size: int, seed: int,
                 start_step: int, workers: int, rank: int = 0, world_size: int = 1,
                 flow_source=None, learns_from_unlabeled: bool = False):
    """Build an endless, seeded, resumable loader of training batches (dicts of tensors)."""
    clips = build_clips(cfg, 'train', clip_length=clip_length, gap=tuple(cfg.gap),
                        learns_from_unlabeled=learns_from_unlabeled)
    if flow_source is not None:
        clips = FlowClips(clips, flow_source)
    transform = train_transforms(crop_size=tuple(cfg.crop_size),
                                 scale_range=tuple(cfg.scale_range))
    sampler = ResumableBatchSampler(len(clips), batch_size, seed, start_step, rank, world_size)
    return torch.utils.data.DataLoader(
        SeededClips(clips, transform, seed), batch_sampler=sampler, num_workers=workers,
        persistent_workers=workers > 0), clips
