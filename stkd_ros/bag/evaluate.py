"""
`stkd eval-bag`: run one or more models over every frame of a recorded drive.

One pass over the bag: each frame is decoded once, the flow from the previous frame is
computed once (DIS) and shared by every model, and each model's mask is compared with its
previous mask (flicker, TC), with the label when the bag has a label topic (mIoU), and timed.
"""

from collections import OrderedDict
from dataclasses import dataclass, field
import logging
from pathlib import Path
import time
from typing import List

import cv2
import numpy as np
from stkd_ros.bag.reader import BagError, iter_messages, open_bag
from stkd_ros.flicker import pair_metrics
from stkd_ros.flow.warp import warp_numpy
from stkd_ros.image_msgs import compressed_to_rgb, image_to_rgb, ImageError
from stkd_ros.inference import Segmenter
from stkd_ros.metrics import ConfusionMatrix
import torch
from tqdm import tqdm

OUTSIDE = 254   # warp fill for samples from outside the image

log = logging.getLogger(__name__)


def decode(msgtype: str, msg) -> np.ndarray:
    """Decode a rosbags Image or CompressedImage message into HxWx3 uint8 RGB."""
    if msgtype.endswith('CompressedImage'):
        return compressed_to_rgb(msg.format, msg.data)
    return image_to_rgb(int(msg.height), int(msg.width), msg.encoding, int(msg.step),
                        np.asarray(msg.data), int(msg.is_bigendian))


def decode_label(msg) -> np.ndarray:
    if msg.encoding != 'mono8':
        raise ImageError(f'label encoding {msg.encoding!r} is not mono8')
    rows = np.asarray(msg.data, np.uint8).reshape(int(msg.height), int(msg.step))
    return np.array(rows[:, :int(msg.width)])   # a writable copy


def stamp_of(msg) -> int:
    return int(msg.header.stamp.sec) * 1_000_000_000 + int(msg.header.stamp.nanosec)


@dataclass
class ModelTrack:
    """Everything measured for one model along the drive."""

    name: str
    segmenter: Segmenter
    flicker: List[float] = field(default_factory=list)
    tc: List[float] = field(default_factory=list)
    stamps: List[int] = field(default_factory=list)
    latency_ms: List[float] = field(default_factory=list)

    def __post_init__(self):
        k = len(self.segmenter.classes)
        self.confusion = ConfusionMatrix(k)
        self.class_pixels = np.zeros(k, np.int64)     # predicted pixels per class
        self.class_changed = np.zeros(k, np.int64)    # flow-valid pixels that changed class
        self.class_counted = np.zeros(k, np.int64)    # flow-valid pixels per class
        self.prev_mask = None
        self.unscored = OrderedDict()                 # masks waiting for their label

    def add_mask(self, stamp, mask, small, flow, labels):
        k = len(self.class_pixels)
        self.class_pixels += np.bincount(mask.ravel(), minlength=k)[:k]
        if flow is not None and self.prev_mask is not None:
            m = pair_metrics(self.prev_mask, small, flow)
            self.flicker.append(m['flicker'])
            self.tc.append(m['tc'])
            self.stamps.append(stamp)
            warped = warp_numpy(small, flow, nearest=True, border_value=OUTSIDE)
            valid = (warped != OUTSIDE) & (self.prev_mask < k)
            prev = self.prev_mask[valid]
            self.class_counted += np.bincount(prev, minlength=k)[:k]
            self.class_changed += np.bincount(prev[warped[valid] != prev], minlength=k)[:k]
        self.prev_mask = small
        if stamp in labels:
            self.score(mask, labels[stamp])
        else:
            self.unscored[stamp] = mask
            while len(self.unscored) > 30:
                self.unscored.popitem(last=False)

    def add_label(self, stamp, label):
        if stamp in self.unscored:
            self.score(self.unscored.pop(stamp), label)

    def score(self, mask, label):
        if mask.shape != label.shape:
            raise BagError(f'label size {label.shape} differs from image size {mask.shape}')
        self.confusion.update(torch.from_numpy(mask), torch.from_numpy(label))


def _names(models) -> List[str]:
    stems = [Path(m).stem for m in models]
    return [s if stems.count(s) == 1 else f'{Path(m).parent.name}/{s}'
            for s, m in zip(stems, models)]


def evaluate_bag(bag, models, topic: str, label_topic: str = None, max_frames: int = None,
                 flow_side: int = 480) -> dict:
    """Run every model over ``topic``; returns per-model tracks and the frame stamps."""
    tracks = [ModelTrack(n, Segmenter(m)) for n, m in zip(_names(models), models)]
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_FAST)
    labels, stamps, prev_gray, rejected = {}, [], None, 0
    topics = [topic] + ([label_topic] if label_topic else [])
    with open_bag(bag) as reader:
        total = sum(c.msgcount for c in reader.connections if c.topic == topic)
        bar = tqdm(total=min(total, max_frames or total), desc='eval-bag', unit='frame',
                   disable=None)
        for name, msgtype, _, msg in iter_messages(reader, topics):
            if name == label_topic and name != topic:
                labels[stamp_of(msg)] = decode_label(msg)
                for track in tracks:
                    track.add_label(stamp_of(msg), labels[stamp_of(msg)])
                continue
            try:
                frame = decode(msgtype, msg)
            except ImageError as exc:
                rejected += 1
                log.warning('skipped a frame on %s: %s', topic, exc)
                continue
            stamp = stamp_of(msg)
            scale = min(1.0, flow_side / max(frame.shape[:2]))
            gray = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
            if scale < 1.0:
                gray = cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
            flow = None
            if prev_gray is not None and prev_gray.shape == gray.shape:
                flow = dis.calc(prev_gray, gray, None)
            for track in tracks:
                start = time.perf_counter()
                mask = track.segmenter.segment(frame)
                track.latency_ms.append((time.perf_counter() - start) * 1e3)
                small = mask if scale == 1.0 else cv2.resize(
                    mask, gray.shape[::-1], interpolation=cv2.INTER_NEAREST)
                track.add_mask(stamp, mask, small, flow, labels)
            prev_gray = gray
            stamps.append(stamp)
            bar.update(1)
            if max_frames and len(stamps) >= max_frames:
                break
        bar.close()
    if not stamps:
        raise BagError(f'no decodable frame on {topic} in {bag}')
    return {'tracks': tracks, 'stamps': stamps,
            'labeled': bool(labels), 'rejected': rejected, 'topic': topic, 'bag': str(bag)}


def fetch_frames(bag, topic: str, stamps) -> dict:
    """Decode the frames of ``topic`` whose header stamps are in ``stamps``."""
    found = {}
    with open_bag(bag) as reader:
        for _, msgtype, _, msg in iter_messages(reader, [topic]):
            if stamp_of(msg) in stamps:
                found[stamp_of(msg)] = decode(msgtype, msg)
                if len(found) == len(stamps):
                    break
    return found
