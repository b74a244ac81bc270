"""The synthetic world: deterministic, hard in the intended ways, with exact labels and flow."""

import hashlib
import inspect
from pathlib import Path
import random

import numpy as np
import pytest
from stkd_ros.config import DataConfig, SyntheticDataConfig
from stkd_ros.data.classes import IGNORE_INDEX
from stkd_ros.data.datasets import build_clips
from stkd_ros.data.render_cache import RENDER_VERSION
from stkd_ros.data.render_warm import frames, warm
from stkd_ros.data.synthetic import SyntheticClips, SyntheticConfig, SyntheticWorld
from stkd_ros.data.world.render import render
from stkd_ros.flow.warp import warp_labels
import torch


def test_same_seed_and_index_give_the_same_pixels(small_world):
    other = SyntheticWorld(small_world.config)
    a, b = small_world.clip(1, length=2), other.clip(1, length=2)
    np.testing.assert_array_equal(a.frames, b.frames)
    np.testing.assert_array_equal(a.labels, b.labels)
    np.testing.assert_array_equal(a.flows, b.flows)


def test_different_clips_and_seeds_differ(small_world):
    c0, c1 = small_world.clip(0, length=1), small_world.clip(1, length=1)
    assert not np.array_equal(c0.frames, c1.frames)
    reseeded = SyntheticWorld(SyntheticConfig(**{**small_world.config.__dict__, 'seed': 4}))
    assert not np.array_equal(c0.frames, reseeded.clip(0, length=1).frames)


def test_clip_shapes_and_classes(small_world):
    clip = small_world.clip(0)
    t, h, w = 6, 96, 192
    assert clip.frames.shape == (t, h, w, 3) and clip.frames.dtype == np.uint8
    assert clip.labels.shape == (t, h, w) and clip.labels.dtype == np.uint8
    assert clip.flows.shape == (t - 1, h, w, 2) and clip.flows.dtype == np.float32
    values = set(np.unique(clip.labels).tolist())
    assert values <= set(range(11)) | {IGNORE_INDEX}
    # A street scene: sky, building, road and sidewalk are always in view.
    assert {0, 1, 3, 4} <= values


def test_all_classes_appear_over_a_few_clips():
    world = SyntheticWorld(SyntheticConfig(height=128, width=256, frames=2, seed=0))
    seen = set()
    for i in range(12):
        seen |= set(np.unique(world.frame(i, 0)[1]).tolist())
    assert set(range(11)) <= seen


def test_exact_flow_aligns_the_rendered_albedo(small_world):
    """Warping frame t+1 back along the exact flow reproduces frame t where nothing occludes."""
    scene, cam = small_world.scene(0), small_world.camera
    r0, r1 = render(scene, 0, cam), render(scene, 1, cam)
    from stkd_ros.data.world.render import exact_flow
    flow = exact_flow(scene, r0, 0, 1, cam)
    # As training warps labels (nearest); 254, no class, marks targets outside the frame.
    warped_labels = warp_labels(torch.from_numpy(r1.label.astype(np.int64))[None],
                                torch.from_numpy(flow).permute(2, 0, 1)[None],
                                ignore_index=254)[0].numpy()
    inside = warped_labels != 254
    agree = (warped_labels == r0.label)[inside].mean()
    assert agree > 0.97, agree
    assert np.abs(flow).max() > 1.0   # the camera really moves


def test_flow_to_itself_is_zero(small_world):
    scene, cam = small_world.scene(2), small_world.camera
    frame = render(scene, 3, cam)
    from stkd_ros.data.world.render import exact_flow
    assert np.abs(exact_flow(scene, frame, 3, 3, cam)).max() < 1e-3


def test_sensor_noise_grows_with_difficulty():
    """The same flat grey surface comes out noisier from a harder world's camera."""
    from stkd_ros.data.world.sensor import apply_sensor
    albedo = np.full((64, 128, 3), 0.5, np.float32)
    spread = []
    for difficulty in (0.0, 0.5, 1.0):
        frame = apply_sensor(albedo, gain=1.0, difficulty=difficulty, shake_px=0.0,
                             rng=np.random.default_rng(0))
        centre = frame[16:48, 32:96].astype(np.float32)
        spread.append(float(centre.std()))
    assert spread[0] < spread[1] < spread[2], spread


@pytest.mark.parametrize('kwargs,match', [
    ({'height': 8}, 'at least 16x16'),
    ({'frames': 1}, 'at least 2 frames'),
    ({'difficulty': 1.5}, r'difficulty must be in \[0, 1\]'),
])
def test_bad_config_is_a_clear_error(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SyntheticConfig(**kwargs)


def test_dataset_splits_are_disjoint_and_eval_is_fixed():
    cfg = SyntheticConfig(height=64, width=128, frames=6, seed=0)
    train = SyntheticClips(cfg, split='train', clips=2, keys_per_clip=2)
    val = SyntheticClips(cfg, split='val', clips=2, keys_per_clip=2)
    assert len(train) == 4
    assert not np.array_equal(train[0].frames[0], val[0].frames[0])
    np.testing.assert_array_equal(val[1].frames, val[1].frames)
    clip = train[3]
    assert clip.frames.shape == (2, 64, 128, 3) and clip.flows.shape == (1, 64, 128, 2)
    with pytest.raises(IndexError):
        train[4]


def test_dataset_rejects_gaps_longer_than_the_clip():
    with pytest.raises(ValueError, match='cannot hold'):
        SyntheticClips(SyntheticConfig(frames=3), gap=(1, 5))


def test_sparse_labels_keep_only_the_annotated_key_frames_of_training_clips():
    cfg = DataConfig(gap=[1, 3], synthetic=SyntheticDataConfig(height=32, width=64, frames=30,
                                                               label_every=30))
    train = build_clips(cfg, 'train', clip_length=2, gap=cfg.gap)
    for item in range(3):
        random.seed(item)
        clip = train[item]
        # Frame 15 is the one annotated frame of a 30-frame clip; its neighbour is unlabeled.
        assert clip.name.endswith('_015')
        assert (clip.labels[0] != IGNORE_INDEX).any()
        assert (clip.labels[1] == IGNORE_INDEX).all()
    val = build_clips(cfg, 'val', clip_length=2, gap=cfg.eval_gap)
    assert all((val[i].labels != IGNORE_INDEX).any(axis=(1, 2)).all() for i in range(2))
    dense = build_clips(DataConfig(synthetic=SyntheticDataConfig(height=32, width=64)),
                        'train', clip_length=2, gap=[1, 3])
    assert (dense[0].labels != IGNORE_INDEX).any(axis=(1, 2)).all()


def test_unlabeled_streets_start_anywhere_carry_no_label_and_share_no_street():
    world = SyntheticConfig(height=32, width=64, frames=30)
    unlabeled = SyntheticClips(world, split='unlabeled', clips=2, gap=(1, 1))
    starts = set()
    for item in range(40):
        random.seed(item)
        clip = unlabeled[item % len(unlabeled)]
        starts.add(int(clip.name.rsplit('_', 1)[1]))
        assert (clip.labels == IGNORE_INDEX).all() and clip.flows.shape[0] == 1
    assert len(starts) > 10
    first = {split: SyntheticClips(world, split=split, clips=1, gap=1).world.frame(0, 0)[0]
             for split in SyntheticClips.SPLIT_SEED}
    assert len({f.tobytes() for f in first.values()}) == len(first)


def test_a_one_frame_task_and_a_pair_task_draw_the_same_labeled_key_frames():
    world = SyntheticConfig(height=32, width=64, frames=12)
    single = SyntheticClips(world, clips=2, gap=(1, 3), clip_length=1)
    pairs = SyntheticClips(world, clips=2, gap=(1, 3), clip_length=2)
    for item in range(8):
        random.seed(item)
        a = single[item]
        random.seed(item)
        b = pairs[item]
        assert a.name == b.name and (a.frames[0] == b.frames[0]).all()


@pytest.mark.parametrize('label_every, match', [
    (0, 'label_every must be 1 or more'),
    (10, 'no labeled frame of a 6-frame clip'),
])
def test_sparse_labels_that_leave_nothing_to_train_on_are_refused(label_every, match):
    with pytest.raises(ValueError, match=match):
        SyntheticClips(SyntheticConfig(height=32, width=64, frames=6), gap=(1, 3),
                       label_every=label_every)


def test_the_render_cache_returns_the_rendered_frames_and_renders_again_when_damaged(tmp_path):
    config = SyntheticConfig(height=32, width=64, frames=4, seed=5)
    plain = SyntheticWorld(config)
    cached = SyntheticWorld(config, cache_dir=tmp_path)
    expected = plain.frame(1, 2, flow_to=3)
    for world in (cached, SyntheticWorld(config, cache_dir=tmp_path)):   # write, then read
        got = world.frame(1, 2, flow_to=3)
        for a, b in zip(got, expected):
            np.testing.assert_array_equal(a, b)
    (stored,) = tmp_path.rglob('*.npz')
    stored.write_bytes(b'damaged')
    np.testing.assert_array_equal(cached.frame(1, 2, flow_to=3)[0], expected[0])
    assert cached.frame(1, 2)[2] is None
    other = SyntheticWorld(SyntheticConfig(height=32, width=64, frames=4, seed=6), tmp_path)
    assert not np.array_equal(other.frame(1, 2)[0], expected[0])


@pytest.mark.parametrize('split, clip_length, label_every', [
    ('train', 1, 3), ('train', 2, 3), ('unlabeled', 2, 1), ('val', 2, 1)])
def test_a_warmed_render_cache_holds_every_view_a_sample_can_draw(
        tmp_path, split, clip_length, label_every):
    config = SyntheticConfig(height=32, width=64, frames=8, seed=3)
    clips = SyntheticClips(config, split=split, clips=3, gap=(1, 3), clip_length=clip_length,
                           keys_per_clip=2, label_every=label_every, cache_dir=tmp_path)
    every = {(index, *frame) for index, start, gap in clips.views()
             for frame in frames(clips, start, gap)}
    assert sum(warm(clips, shard, 2) for shard in range(2)) == len(every)
    assert warm(clips) == 0                                 # all cached: nothing rendered again

    def miss(*key):
        raise AssertionError(f'view {key} was not in the warmed cache')

    clips.world._render = miss
    for seed in range(40):
        random.seed(seed)
        for item in range(len(clips)):
            clips[item]


def renderer_source_digest() -> str:
    """SHA-1 of what draws a frame: the world package and ``SyntheticWorld._render``."""
    h = hashlib.sha1()
    for path in sorted(Path(inspect.getfile(SyntheticWorld)).with_name('world').glob('*.py')):
        h.update(path.read_bytes())
    h.update(inspect.getsource(SyntheticWorld._render).encode())
    return h.hexdigest()[:12]


#: RENDER_VERSION -> the renderer's source digest it was set for.
RENDERER_DIGESTS = {1: 'c002f52ec2e0'}


def test_the_render_version_changes_with_the_renderer():
    digest = renderer_source_digest()
    assert RENDERER_DIGESTS.get(RENDER_VERSION) == digest, (
        f'the renderer changed (digest {digest}): if it now draws other pixels, labels or '
        f'flow, bump RENDER_VERSION in stkd_ros/data/render_cache.py; then record the digest '
        f'here for the version')
