"""
The built-in synthetic driving world: deterministic road clips with exact labels and flow.

Each clip is a drive down a procedurally laid-out street (buildings, poles, signs, trees,
fences, parked and moving cars, pedestrians, bicyclists) seen by a camera moving forward and
turning, with lighting changes, vignetting, motion blur, sensor noise and JPEG artifacts.
Everything is a function of ``(seed, clip index)``: no download, same pixels on every machine.
Labels use CamVid's 11 classes; void surfaces carry 255.
"""

from dataclasses import dataclass
from functools import lru_cache
import random

import numpy as np
from stkd_ros.data.classes import CAMVID_CLASSES, CAMVID_PALETTE, IGNORE_INDEX
from stkd_ros.data.clip import Clip, FrameGap
from stkd_ros.data.render_cache import RenderCache
from stkd_ros.data.world.render import Camera, exact_flow, render
from stkd_ros.data.world.scene import build_scene, Scene
from stkd_ros.data.world.sensor import apply_sensor
from stkd_ros.errors import InputError

FPS = 30.0


@dataclass
class SyntheticConfig:
    """Knobs of the world: frame size, frames per clip, difficulty (0 easy .. 1 hard), seed."""

    height: int = 256
    width: int = 512
    frames: int = 30
    difficulty: float = 0.6
    seed: int = 0

    def __post_init__(self):
        if self.height < 16 or self.width < 16:
            raise InputError(f'synthetic frame size must be at least 16x16, got '
                             f'{self.height}x{self.width}')
        if self.frames < 2:
            raise InputError(f'a synthetic clip needs at least 2 frames, got {self.frames}')
        if not 0.0 <= self.difficulty <= 1.0:
            raise InputError(f'difficulty must be in [0, 1], got {self.difficulty}')


class SyntheticWorld:
    """Renders clips of the synthetic world; ``clip(i)`` is the same for the same config."""

    classes = CAMVID_CLASSES
    palette = CAMVID_PALETTE

    def __init__(self, config: SyntheticConfig = SyntheticConfig(), cache_dir=None):
        self.config = config
        self.camera = Camera(config.height, config.width)
        self.cache = RenderCache(cache_dir, config) if cache_dir else None

    @lru_cache(maxsize=8)
    def scene(self, index: int) -> Scene:
        rng = np.random.default_rng([self.config.seed, index])
        return build_scene(rng, self.config.frames, self.config.difficulty)

    def frame(self, index: int, t: int, flow_to: int = None):
        """Render frame ``t`` of clip ``index``: (RGB uint8, label uint8, flow or None)."""
        if not 0 <= t < self.config.frames:
            raise IndexError(f'frame {t} outside clip of {self.config.frames} frames')
        if self.cache is None:
            return self._render(index, t, flow_to)
        cached = self.cache.get(index, t, flow_to)
        if cached is None:
            cached = self._render(index, t, flow_to)
            self.cache.put(index, t, flow_to, *cached)
        return cached

    def _render(self, index: int, t: int, flow_to: int = None):
        scene = self.scene(index)
        rendered = render(scene, t, self.camera)
        rot_prev = scene.cam_rot[max(t - 1, 0)]
        turn = np.linalg.norm(rot_prev - scene.cam_rot[t]) * self.camera.focal
        rng = np.random.default_rng([self.config.seed, index, t])
        image = apply_sensor(rendered.albedo, gain=float(scene.exposure[t]),
                             difficulty=self.config.difficulty, shake_px=turn, rng=rng)
        flow = None
        if flow_to is not None:
            flow = exact_flow(scene, rendered, t, flow_to, self.camera)
        return image, rendered.label, flow

    def clip(self, index: int, start: int = 0, length: int = None, gap: int = 1) -> Clip:
        """Frames ``start, start + gap, ...`` of clip ``index`` with exact flow between them."""
        length = self.config.frames if length is None else length
        times = [start + i * gap for i in range(length)]
        if times[-1] >= self.config.frames:
            raise IndexError(f'clip of {self.config.frames} frames has no frame {times[-1]}')
        frames, labels, flows = [], [], []
        for i, t in enumerate(times):
            nxt = times[i + 1] if i + 1 < len(times) else None
            image, label, flow = self.frame(index, t, nxt)
            frames.append(image)
            labels.append(label)
            if flow is not None:
                flows.append(flow)
        return Clip(np.stack(frames), np.stack(labels), np.stack(flows) if flows else
                    np.zeros((0,) + labels[0].shape + (2,), np.float32),
                    name=f'{self.sequence_name(index)}_{start:03d}', gap=gap,
                    sequence=self.sequence_name(index), times=tuple(times))

    def sequence_name(self, index: int) -> str:
        """Name street ``index`` by the world's seed (a split's own) and the street's index."""
        return f'synthetic_{self.config.seed}_{index:05d}'


class SyntheticClips:
    """
    A dataset of key frames with a neighbour at a frame gap, rendered on demand.

    Split ``train`` draws the key frame and the gap at random; ``val`` and ``test`` use fixed,
    evenly spaced key frames and the smallest gap. Splits use disjoint seeds, so they share
    no street.

    ``label_every`` > 1 annotates the training split as real driving video is annotated
    (Cityscapes: one frame of each 30-frame snippet; CamVid: 1 Hz of 30 Hz video): only frames
    t with t % label_every == label_every // 2 keep their labels, every training clip starts
    at one of them, and its later frames carry 255. Held-out splits stay fully labeled, since
    scoring is not training.

    Split ``unlabeled`` holds streets that are never labeled (every label 255), for
    distillation from unlabeled video; its clips start at any frame. Split ``tune`` is held
    out like ``val`` but kept apart from it, for choosing settings without touching the
    reported held-out streets.
    """

    SPLIT_SEED = {'train': 0, 'val': 1_000_003, 'test': 2_000_003, 'tune': 3_000_003,
                  'unlabeled': 4_000_003}

    def __init__(self, config: SyntheticConfig, *, split: str = 'train', clips: int = 100,
                 gap=(1, 3), clip_length: int = 2, keys_per_clip: int = 4,
                 label_every: int = 1, cache_dir=None):
        if split not in self.SPLIT_SEED:
            raise InputError(f'unknown split {split!r}; expected one of {list(self.SPLIT_SEED)}')
        seeded = SyntheticConfig(**{**config.__dict__, 'seed': config.seed
                                    + self.SPLIT_SEED[split]})
        self.world = SyntheticWorld(seeded, cache_dir)
        self.split, self.clips, self.gap = split, clips, FrameGap(gap)
        self.clip_length, self.keys_per_clip = clip_length, keys_per_clip
        self.classes, self.palette = CAMVID_CLASSES, CAMVID_PALETTE
        # Room for a pair even when one frame is asked for: a key frame is then drawn the same
        # way for a one-frame task and a two-frame one, so both see the same labeled views.
        span = max(clip_length - 1, 1) * self.gap.high
        if span >= seeded.frames:
            raise InputError(f'clips of {seeded.frames} frames cannot hold {clip_length} '
                             f'frames {self.gap.high} apart')
        if label_every < 1:
            raise InputError(f'label_every must be 1 or more frames, got {label_every}')
        self.label_every = label_every
        # Clips start at labeled frames; on never-labeled streets, at any frame.
        self.key_frames = [t for t in range(seeded.frames)
                           if split == 'unlabeled' or self.labeled(t)]
        if not any(t < seeded.frames - span for t in self.key_frames):
            raise InputError(f'label_every {label_every}: no labeled frame of a '
                             f'{seeded.frames}-frame clip is followed by {span} more frames')

    def __len__(self):
        return self.clips * self.keys_per_clip

    def __getitem__(self, item: int) -> Clip:
        if not 0 <= item < len(self):
            raise IndexError(item)
        index, key = divmod(item, self.keys_per_clip)
        if self.split not in ('train', 'unlabeled'):
            gap = self.gap.low
            return self.world.clip(index, start=self._fixed_starts(gap)[key],
                                   length=self.clip_length, gap=gap)
        gap = self.gap.sample()
        start = random.choice(self._random_starts(gap))
        clip = self.world.clip(index, start=start, length=self.clip_length, gap=gap)
        for i in range(self.clip_length):
            if not self.labeled(start + i * gap):
                clip.labels[i] = IGNORE_INDEX
        return clip

    def _fixed_starts(self, gap: int) -> list:
        """Held-out splits: ``keys_per_clip`` evenly spaced starts, one per key."""
        last = self.world.config.frames - 1 - (self.clip_length - 1) * gap
        return [(key * last) // max(self.keys_per_clip - 1, 1)
                for key in range(self.keys_per_clip)]

    def _random_starts(self, gap: int) -> list:
        """Training splits: every key frame that leaves room for a pair ``gap`` apart."""
        last = self.world.config.frames - 1 - max(self.clip_length - 1, 1) * gap
        return [t for t in self.key_frames if t <= last]

    def views(self):
        """
        Yield every (clip index, start, gap) a sample can take, each once.

        ``world.clip(index, start, clip_length, gap)`` renders one; warming the render cache
        (``stkd_ros.data.render_warm``) walks them all.
        """
        held_out = self.split not in ('train', 'unlabeled')
        gaps = [self.gap.low] if held_out else range(self.gap.low, self.gap.high + 1)
        for index in range(self.clips):
            for gap in gaps:
                starts = self._fixed_starts(gap) if held_out else self._random_starts(gap)
                yield from ((index, start, gap) for start in sorted(set(starts)))

    def list_sequences(self) -> list:
        """Every street of the split as (sequence name, frame count), in street order."""
        return [(self.world.sequence_name(i), self.world.config.frames)
                for i in range(self.clips)]

    def sequence_size(self, sequence: str) -> tuple:
        """Frame size (height, width) of a sequence: one for the whole world."""
        self._street(sequence)
        return self.world.config.height, self.world.config.width

    def sequence_frame(self, sequence: str, t: int):
        """
        Frame ``t`` of a street and its ground truth: (RGB uint8, labels uint8).

        The truth is the world's, also on the never-labeled split: what training does not
        see, label quality can still be scored against.
        """
        image, label, _ = self.world.frame(self._street(sequence), t)
        return image, label

    def sequence_truth(self, sequence: str, t: int) -> np.ndarray:
        """Return the ground truth (H, W uint8) of frame ``t`` of a street."""
        return self.sequence_frame(sequence, t)[1]

    def exact_flow(self, sequence: str, t: int, to: int) -> np.ndarray:
        """Return the exact flow (H, W, 2) from frame ``t`` of a street to frame ``to``."""
        return self.world.frame(self._street(sequence), t, to)[2]

    def _street(self, sequence: str) -> int:
        """Return the street index that ``sequence`` names (an error if none of this split)."""
        index = sequence.rpartition('_')[2]
        if (index.isdigit() and int(index) < self.clips
                and self.world.sequence_name(int(index)) == sequence):
            return int(index)
        raise InputError(f'{sequence!r} is not a street of the synthetic {self.split} split '
                         f'({self.clips} streets, {self.world.sequence_name(0)} ...)')

    def labeled(self, t: int) -> bool:
        """Whether frame ``t`` of a training clip keeps its label (none of an unlabeled one)."""
        if self.split == 'unlabeled':
            return False
        return t % self.label_every == self.label_every // 2
