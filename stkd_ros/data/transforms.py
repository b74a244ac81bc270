"""
Joint clip transforms: one draw of scale, crop and flip for a whole clip.

The same draw applies to every frame, label and flow of a clip, so that frames stay aligned
with each other and with their flow.

Resizing a flow field rescales its vectors; flipping it horizontally negates its x component.
"""

from dataclasses import replace
import random
from typing import Sequence, Tuple

import cv2
import numpy as np
from stkd_ros.data.classes import IGNORE_INDEX, resize_classes
from stkd_ros.data.clip import Clip
from stkd_ros.errors import InputError
import torch

#: ImageNet statistics, what timm and torchvision backbones were trained with.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


#: Per-frame maps of a clip that move with its frames: (field, padding value). Labels are
#: the dataset's; ``targets`` and ``confidence`` a label store's (stkd_ros.labeling).
FRAME_MAPS = (('labels', IGNORE_INDEX), ('targets', IGNORE_INDEX), ('confidence', 0))


def _maps(clip: Clip) -> dict:
    return {name: getattr(clip, name) for name, _ in FRAME_MAPS
            if getattr(clip, name) is not None}


def _resize_clip(clip: Clip, height: int, width: int) -> Clip:
    h, w = clip.frames.shape[1:3]
    if (h, w) == (height, width):
        return clip
    frames = np.stack([cv2.resize(f, (width, height), interpolation=cv2.INTER_LINEAR)
                       for f in clip.frames])
    # Labels, a store's classes and confidence, and the padding mask: nearest neighbour at
    # pixel centres, the frames' grid (resize_classes).
    maps = {name: np.stack([resize_classes(m, (height, width)) for m in array])
            for name, array in _maps(clip).items()}
    flows = clip.flows
    if flows is not None and len(flows):
        scale = np.array([width / w, height / h], np.float32)
        flows = np.stack([cv2.resize(f, (width, height), interpolation=cv2.INTER_LINEAR) * scale
                          for f in flows])
    elif flows is not None:
        flows = np.zeros((0, height, width, 2), np.float32)
    valid = clip.valid
    if valid is not None:
        valid = resize_classes(valid.astype(np.uint8), (height, width)).astype(bool)
    return replace(clip, frames=frames, flows=flows, valid=valid, **maps)


class RandomScale:
    """Resize the clip by one factor drawn uniformly from ``[low, high]``."""

    def __init__(self, low: float, high: float):
        if not 0 < low <= high:
            raise InputError(f'scale range must satisfy 0 < low <= high, got ({low}, {high})')
        self.low, self.high = low, high

    def __call__(self, clip: Clip) -> Clip:
        s = random.uniform(self.low, self.high)
        h, w = clip.frames.shape[1:3]
        return _resize_clip(clip, max(1, round(h * s)), max(1, round(w * s)))


class RandomCrop:
    """Crop one random (height, width) window from every frame; pad first where too small."""

    def __init__(self, size: Tuple[int, int]):
        self.size = tuple(size)

    def __call__(self, clip: Clip) -> Clip:
        ch, cw = self.size
        h, w = clip.frames.shape[1:3]
        ph, pw = max(ch - h, 0), max(cw - w, 0)
        frames, flows, maps = clip.frames, clip.flows, _maps(clip)
        valid = np.ones((h, w), bool) if clip.valid is None else clip.valid
        if ph or pw:
            frames = np.pad(frames, ((0, 0), (0, ph), (0, pw), (0, 0)))
            pads = dict(FRAME_MAPS)
            maps = {name: np.pad(m, ((0, 0), (0, ph), (0, pw)), constant_values=pads[name])
                    for name, m in maps.items()}
            if flows is not None:
                flows = np.pad(flows, ((0, 0), (0, ph), (0, pw), (0, 0)))
            valid = np.pad(valid, ((0, ph), (0, pw)))
            h, w = h + ph, w + pw
        y, x = random.randint(0, h - ch), random.randint(0, w - cw)
        crop = (slice(None), slice(y, y + ch), slice(x, x + cw))
        return replace(clip, frames=frames[crop], flows=None if flows is None else flows[crop],
                       valid=valid[crop[1:]], **{n: m[crop] for n, m in maps.items()})


class RandomHorizontalFlip:
    def __init__(self, p: float = 0.5):
        self.p = p

    def __call__(self, clip: Clip) -> Clip:
        if random.random() >= self.p:
            return clip
        flows = None
        if clip.flows is not None:
            flows = clip.flows[:, :, ::-1].copy()
            flows[..., 0] *= -1.0
        valid = None if clip.valid is None else clip.valid[:, ::-1].copy()
        return replace(clip, frames=clip.frames[:, :, ::-1].copy(), flows=flows, valid=valid,
                       **{n: m[:, :, ::-1].copy() for n, m in _maps(clip).items()})


class ToTensor:
    """
    Turn a clip into tensors.

    ``frames`` (T, 3, H, W) normalized float, ``labels`` (T, H, W) long, ``valid`` (H, W)
    bool (False on crop padding, which no loss may treat as image), ``flows``
    (T-1, 2, H, W) when the clip has flow, ``visible`` (H, W) bool when it has that, and a
    label store's ``targets`` (T, H, W) long and ``confidence`` (T, H, W) float in [0, 1].
    """

    def __init__(self, mean: Sequence[float] = IMAGENET_MEAN,
                 std: Sequence[float] = IMAGENET_STD):
        self.mean = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)

    def __call__(self, clip: Clip) -> dict:
        frames = torch.from_numpy(np.ascontiguousarray(clip.frames)).permute(0, 3, 1, 2)
        out = {'frames': (frames.float() / 255.0 - self.mean) / self.std,
               'labels': torch.from_numpy(np.ascontiguousarray(clip.labels)).long(),
               'valid': (torch.ones(frames.shape[-2:], dtype=torch.bool) if clip.valid is None
                         else torch.from_numpy(np.ascontiguousarray(clip.valid)))}
        if clip.flows is not None:
            out['flows'] = torch.from_numpy(np.ascontiguousarray(clip.flows)).permute(0, 3, 1, 2)
        if clip.visible is not None:
            out['visible'] = torch.from_numpy(np.ascontiguousarray(clip.visible))
        if clip.targets is not None:
            out['targets'] = torch.from_numpy(np.ascontiguousarray(clip.targets)).long()
            out['confidence'] = torch.from_numpy(np.ascontiguousarray(clip.confidence)) / 255.0
        return out


class Compose:
    def __init__(self, transforms):
        self.transforms = list(transforms)

    def __call__(self, clip):
        for t in self.transforms:
            clip = t(clip)
        return clip


def train_transforms(*, crop_size: Tuple[int, int], scale_range=(0.5, 2.0), flip: bool = True,
                     extra=(), mean=IMAGENET_MEAN, std=IMAGENET_STD) -> Compose:
    """
    Random scale, random crop, random flip, then tensors: the usual segmentation recipe.

    ``extra`` transforms run on the uint8 clip between the geometric steps and the tensors.
    """
    steps = [RandomScale(*scale_range), RandomCrop(crop_size)]
    if flip:
        steps.append(RandomHorizontalFlip())
    return Compose(steps + list(extra) + [ToTensor(mean, std)])
