"""
A recorded drive as unlabeled training video: frame pairs from one image topic of a bag.

The topic's frames are decoded once into a ``.npy`` file beside the run (a memory map when
read), so an epoch reads pixels instead of decoding JPEGs or converting encodings again.

A drive has two names. Its short name (:func:`drive_names`: the bag's or folder's name, a
glob's folder and a digest of its pattern, a digest of its path where two drives would share
one) names its sequence in label stores, the same in `stkd label` and `stkd distill`. Its
digest (:func:`drive_digest`: its files' paths, sizes and times, and the topic) keys what
is cached of it, decoded frames and flow, so no two drives and no two versions of one share
an entry.
"""

from collections import Counter
import glob
import hashlib
import logging
import os
from pathlib import Path

import numpy as np
from stkd_ros.atomic_write import temporary_beside
from stkd_ros.bag.messages import decode
from stkd_ros.bag.reader import (bag_paths, BagError, IMAGE_TYPES, iter_messages, open_bag,
                                 topic_type)
from stkd_ros.data.classes import IGNORE_INDEX
from stkd_ros.data.clip import Clip, FrameGap

log = logging.getLogger(__name__)


def _digest(text: str, length: int) -> str:
    return hashlib.sha1(text.encode()).hexdigest()[:length]


def drive_files(source) -> list:
    """Every file of the bags ``source`` names (a bag, a split drive's folder, a glob)."""
    files = []
    for bag in bag_paths(source):
        bag = bag.resolve()
        files += sorted(f for f in bag.rglob('*') if f.is_file()) if bag.is_dir() else [bag]
    return files


def drive_digest(source, topic: str) -> str:
    """16 hex digits of the drive's files (resolved path, size, mtime) and ``topic``."""
    stats = [(str(f), s.st_size, s.st_mtime_ns)
             for f in drive_files(source) for s in (f.stat(),)]
    return _digest(repr((topic, stats)), 16)


def drive_name(source) -> str:
    """
    Name a drive: its bag's or folder's name; a glob's folder above the pattern and digest.

    The name of a file a glob matches would tell the drives of several folders apart no
    better, and a ``*`` has no place in a file name.
    """
    text = str(source)
    parts = Path(text).parts
    magic = [i for i, part in enumerate(parts) if glob.has_magic(part)]
    if not magic or Path(text).exists():
        return Path(os.path.abspath(text)).name
    folder = Path(os.path.abspath(Path(*parts[:magic[0]]) if magic[0] else '.')).name
    return f'{folder}_{_digest("/".join(parts[magic[0]:]), 8)}'


def drive_names(sources) -> list:
    """Name each drive distinctly: a name several share gains a digest of each one's path."""
    names = [drive_name(s) for s in sources]
    shared = {n for n, count in Counter(names).items() if count > 1}
    return [f'{n}_{_digest(os.path.abspath(str(s)), 8)}' if n in shared else n
            for n, s in zip(names, sources)]


def cache_path(bag, topic: str, cache_dir) -> Path:
    """Where the decoded frames of ``topic`` go: named by the drive and its digest."""
    return Path(cache_dir) / f'{drive_name(bag)}_{drive_digest(bag, topic)}.npy'


def decode_topic(bag, topic: str, cache_dir) -> Path:
    """Decode every frame of ``topic`` into an (N, H, W, 3) uint8 ``.npy`` file, once."""
    path = cache_path(bag, topic, cache_dir)
    if path.is_file():
        return path
    with open_bag(bag) as reader:
        msgtype = topic_type(reader, topic)   # all its connections, of one type
        if msgtype not in IMAGE_TYPES:
            raise BagError(f'{bag}: topic {topic} carries {msgtype}, not images')
        count = sum(c.msgcount for c in reader.connections if c.topic == topic)
        if count < 2:
            raise BagError(f'{bag}: topic {topic} has {count} frame(s); pairs need 2 or more')
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = temporary_beside(path)
        frames = None
        for i, (_, msgtype, stamp, msg) in enumerate(iter_messages(reader, [topic])):
            image = decode(msgtype, msg)
            if frames is None:
                log.info('decoding %d frames of %s in %s once, into %s', count, topic, bag,
                         path)
                frames = np.lib.format.open_memmap(tmp, 'w+', np.uint8,
                                                   (count,) + image.shape)
            elif image.shape != frames.shape[1:]:
                raise BagError(f'{bag}: frame {i} of {topic} is {image.shape[1]}x'
                               f'{image.shape[0]}, the first was {frames.shape[2]}x'
                               f'{frames.shape[1]}; a topic must keep one size')
            frames[i] = image
        frames.flush()
        del frames
    os.replace(tmp, path)
    return path


class BagVideo:
    """
    Unlabeled clips of ``clip_length`` frames ``gap`` apart, one starting at every frame.

    Labels are 255 everywhere: what the student learns here comes from the teacher and from
    the video's own consistency.
    """

    def __init__(self, bag, topic: str, *, cache_dir, gap=1, clip_length: int = 2,
                 name: str = None):
        self.path = decode_topic(bag, topic, cache_dir)
        # The sequence's name (``name``: the drive's among others, drive_names), and the
        # clips' names, which key the flow cache: the drive's digest tells drives apart.
        self.name = f'{name or drive_name(bag)}{topic.replace("/", "_")}'
        self.clip_prefix = f'{self.name}_{self.path.stem.rsplit("_", 1)[1]}'
        self.gap, self.clip_length = FrameGap(gap), clip_length
        self.count = int(np.load(self.path, mmap_mode='r').shape[0])
        if self.count <= (clip_length - 1) * self.gap.high:
            raise BagError(f'{bag}: {self.count} frames of {topic} hold no clip of '
                           f'{clip_length} frames {self.gap.high} apart')
        self._frames = None     # opened in each data-loader worker, never pickled

    def __len__(self):
        return self.count - (self.clip_length - 1) * self.gap.high

    def __getitem__(self, index: int) -> Clip:
        if not 0 <= index < len(self):
            raise IndexError(index)
        if self._frames is None:
            self._frames = np.load(self.path, mmap_mode='r')
        gap = self.gap.sample()
        frames = np.array(self._frames[index:index + (self.clip_length - 1) * gap + 1:gap])
        labels = np.full(frames.shape[:3], IGNORE_INDEX, np.uint8)
        times = tuple(index + i * gap for i in range(len(frames)))
        return Clip(frames, labels, None, name=f'{self.clip_prefix}_{index:06d}', gap=gap,
                    sequence=self.name, times=times)

    def list_sequences(self) -> list:
        """Return the drive as one sequence: [(name, frame count)]."""
        return [(self.name, self.count)]

    def sequence_size(self, sequence: str) -> tuple:
        self._check(sequence)
        return tuple(int(n) for n in np.load(self.path, mmap_mode='r').shape[1:3])

    def sequence_frame(self, sequence: str, t: int):
        """Frame ``t`` of the drive and its ground truth (None: a drive has none)."""
        self._check(sequence)
        if self._frames is None:
            self._frames = np.load(self.path, mmap_mode='r')
        return np.array(self._frames[t]), None

    def sequence_truth(self, sequence: str, t: int):
        """Return None: a recorded drive has no ground truth."""
        self._check(sequence)

    def _check(self, sequence: str):
        if sequence != self.name:
            raise BagError(f'{self.name}: no sequence named {sequence!r}')

    def __getstate__(self):
        return {**self.__dict__, '_frames': None}
