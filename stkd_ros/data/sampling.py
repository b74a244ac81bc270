"""
Seeded, resumable sampling of training clips, and batches that mix two streams of them.

Every sample is drawn with Python's ``random`` seeded by (seed, epoch, index), so a sample's
frame gap, scale, crop and flip do not depend on worker count, and a resumed run draws exactly
what an unbroken run would.
"""

import random

from stkd_ros.errors import InputError
import torch


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
