"""
A recorded drive as unlabeled training video: frame pairs from one image topic of a bag.

The topic's frames are decoded once, resized to the training size, into a frame pack
(``stkd_ros.data.frame_pack``: each frame a JPEG, read one at a time when a clip asks for
it), so an epoch neither decodes the bag again nor holds more than its clips' frames. A drive
is decoded when a clip of it is first read, not before: the frame count comes from the bag's
index. Packs go into one cache that `stkd label` and `stkd distill` share
(:func:`default_frame_cache`, or ``data.frame_cache``), so a drive labeled and then learned
from is decoded once; one process of a host decodes a pack while the others wait for it.
Disk per hour of 1080p at 30 Hz (108,000 frames), measured on a generated 3-minute drive
(`bench/bag_throughput.py`): 1.7 GB at the synthetic config's 128x256 (15.7 kB a frame),
15.9 GB at 512x1024 (148 kB), against 31 GB for the bag's JPEG (quality 95) frames; as raw
rgb8 messages the same hour takes 672 GB.

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

import cv2
import numpy as np
from stkd_ros.atomic_write import locked_beside
from stkd_ros.bag.messages import decode
from stkd_ros.bag.reader import (bag_paths, BagError, IMAGE_TYPES, iter_messages, open_bag,
                                 topic_type)
from stkd_ros.data.classes import IGNORE_INDEX
from stkd_ros.data.clip import Clip, FrameGap
from stkd_ros.data.frame_pack import is_complete, PackReader, write_pack

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


def default_frame_cache() -> Path:
    """
    Where decoded frames go unless ``data.frame_cache`` says: the user's cache, shared by runs.

    ``$XDG_CACHE_HOME/stkd_ros/frames``, ``~/.cache/stkd_ros/frames`` where that is unset
    (or relative, which the XDG specification says to ignore). A pack's name carries its
    drive's digest and the training size, so runs of any command share what they can.
    """
    root = os.environ.get('XDG_CACHE_HOME', '')
    base = Path(root) if os.path.isabs(root) else Path.home() / '.cache'
    return base / 'stkd_ros' / 'frames'


def cache_path(bag, topic: str, cache_dir, size) -> Path:
    """Where the frames of ``topic`` at ``size`` (h, w) go: named by the drive and its digest."""
    h, w = size
    return Path(cache_dir) / f'{drive_name(bag)}_{drive_digest(bag, topic)}_{h}x{w}.jpgs'


def _resized(frame: np.ndarray, size) -> np.ndarray:
    """``frame`` at ``size`` (h, w), interpolated as the model's input is at run time."""
    h, w = size
    if frame.shape[:2] == (h, w):
        return frame
    return cv2.resize(frame, (w, h), interpolation=cv2.INTER_LINEAR)


def topic_frames(reader, bag, topic: str) -> int:
    """Count the frames of image ``topic`` in an open bag; one line unless 2 or more."""
    msgtype = topic_type(reader, topic)   # all its connections, of one type
    if msgtype not in IMAGE_TYPES:
        raise BagError(f'{bag}: topic {topic} carries {msgtype}, not images')
    count = sum(c.msgcount for c in reader.connections if c.topic == topic)
    if count < 2:
        raise BagError(f'{bag}: topic {topic} has {count} frame(s); pairs need 2 or more')
    return count


def decode_topic(bag, topic: str, cache_dir, size) -> Path:
    """
    Decode every frame of ``topic`` once, resized to ``size`` (h, w), into a frame pack.

    Returns the pack (``stkd_ros.data.frame_pack``); one written whole before, or by another
    process while this one waited for it, is reused; a torn one (a killed run) is written
    again. One frame is in memory at a time.
    """
    path = cache_path(bag, topic, cache_dir, size)
    if is_complete(path):
        return path
    # One decoder per pack on a host: data-loader workers and label shards that first read a
    # drive together wait for the first one's pack. Hosts sharing a file system are not
    # locked out: each writes a whole pack of the same frames and renames it over the path,
    # so the later one's work is redundant, never torn.
    with locked_beside(path):
        if is_complete(path):   # written while this process waited
            return path
        with open_bag(bag) as reader:
            count = topic_frames(reader, bag, topic)
            log.info('decoding %d frames of %s in %s once, at %dx%d, into %s', count, topic,
                     bag, size[0], size[1], path)
            frames = (_resized(decode(msgtype, msg), size)
                      for _, msgtype, _, msg in iter_messages(reader, [topic]))
            write_pack(path, frames, count, f'{bag}: topic {topic}')
    return path


class BagVideo:
    """
    Unlabeled clips of ``clip_length`` frames ``gap`` apart, one starting at every frame.

    Frames are at ``size`` (h, w): the training size, ``data.eval_size``, the model's input,
    which the labeled frames have before training's random scale and crop and every frame
    is resized to at run time. Building the video reads the bag's index alone; the frames are
    decoded into ``cache_dir`` at the first read (so a `stkd label` shard decodes the drives it
    labels, and training those its clips draw, when it draws them). Labels are 255
    everywhere: what the student learns here comes from the teacher and from the video's own
    consistency.
    """

    def __init__(self, bag, topic: str, *, cache_dir, size, gap=1, clip_length: int = 2,
                 name: str = None):
        self.bag, self.topic, self.size = bag, topic, tuple(int(v) for v in size)
        self.path = cache_path(bag, topic, cache_dir, self.size)
        with open_bag(bag) as reader:
            self.count = topic_frames(reader, bag, topic)
        # The sequence's name (``name``: the drive's among others, drive_names), and the
        # clips' names, which key the flow cache: the drive's digest tells drives apart, the
        # size runs of two training sizes (flow fields of two sizes).
        self.name = f'{name or drive_name(bag)}{topic.replace("/", "_")}'
        self.clip_prefix = '_'.join([self.name] + self.path.stem.rsplit('_', 2)[1:])
        self.gap, self.clip_length = FrameGap(gap), clip_length
        if self.count <= (clip_length - 1) * self.gap.high:
            raise BagError(f'{bag}: {self.count} frames of {topic} hold no clip of '
                           f'{clip_length} frames {self.gap.high} apart')
        self._pack = None   # each data-loader worker opens it at its first read

    def frames(self) -> PackReader:
        """Return the drive's frames at ``size``, decoded first if no process has yet."""
        if self._pack is None:
            self._pack = PackReader(decode_topic(self.bag, self.topic, self.path.parent,
                                                 self.size))
        return self._pack

    def __len__(self):
        return self.count - (self.clip_length - 1) * self.gap.high

    def __getitem__(self, index: int) -> Clip:
        if not 0 <= index < len(self):
            raise IndexError(index)
        gap = self.gap.sample()
        times = tuple(range(index, index + (self.clip_length - 1) * gap + 1, gap))
        frames = np.stack([self.frames().frame(t) for t in times])
        labels = np.full(frames.shape[:3], IGNORE_INDEX, np.uint8)
        return Clip(frames, labels, None, name=f'{self.clip_prefix}_{index:06d}', gap=gap,
                    sequence=self.name, times=times)

    def list_sequences(self) -> list:
        """Return the drive as one sequence: [(name, frame count)]."""
        return [(self.name, self.count)]

    def sequence_size(self, sequence: str) -> tuple:
        """Return the frames' (height, width): the training size they were stored at."""
        self._check(sequence)
        return self.size

    def sequence_frame(self, sequence: str, t: int):
        """Frame ``t`` of the drive and its ground truth (None: a drive has none)."""
        self._check(sequence)
        return self.frames().frame(t), None

    def sequence_truth(self, sequence: str, t: int):
        """Return None: a recorded drive has no ground truth."""
        self._check(sequence)

    def _check(self, sequence: str):
        if sequence != self.name:
            raise BagError(f'{self.name}: no sequence named {sequence!r}')
