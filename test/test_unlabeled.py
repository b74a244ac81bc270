"""Unlabeled video in distillation: never-labeled streets and recorded drives (bags)."""

import csv
import logging
import multiprocessing
import os
import shutil
import subprocess

from cli_helpers import _cmd, synth_bag
import cv2
import numpy as np
import pytest
from stkd_ros.bag.reader import BagError
from stkd_ros.config import DataConfig, DistillFlowConfig, SyntheticDataConfig
from stkd_ros.data.bag_video import BagVideo, cache_path, decode_topic, default_frame_cache
from stkd_ros.data.classes import IGNORE_INDEX
from stkd_ros.data.unlabeled import build_unlabeled
from stkd_ros.flow import build_flow
from stkd_ros.labeling.identity import source_identity
from stkd_ros.labeling.sources import video_sequences
from stkd_ros.training.clip_flow import training_flow
from stkd_ros.training.data_needs import DataNeeds
from stkd_ros.training.loader import train_loader


def _data(**synthetic):
    return DataConfig(crop_size=[32, 64], eval_size=[32, 64], scale_range=[0.8, 1.2],
                      synthetic=SyntheticDataConfig(height=32, width=64, frames=8,
                                                    train_clips=2, keys_per_clip=2,
                                                    **synthetic))


def torch_equal(a, b):
    return a.shape == b.shape and bool((a == b).all())


def _batches(cfg, unlabeled, count=3, start_step=0):
    loader = train_loader(cfg, DataNeeds(frames=2, unlabeled=unlabeled), batch_size=2, seed=5,
                          start_step=start_step, workers=0)
    it = iter(loader)
    return [next(it) for _ in range(count)]


def test_unlabeled_pairs_join_each_batch_and_leave_the_labeled_ones_unchanged():
    cfg = _data(unlabeled_clips=3)
    mixed = _batches(cfg, unlabeled=True)
    plain = _batches(cfg, unlabeled=False)
    for m, p in zip(mixed, plain):
        assert m['frames'].shape[0] == 4 and p['frames'].shape[0] == 2
        assert torch_equal(m['frames'][:2], p['frames'])
        assert torch_equal(m['labels'][:2], p['labels'])
        assert (m['labels'][2:] == IGNORE_INDEX).all()
        assert (m['labels'][:2, 0] != IGNORE_INDEX).any()
    # A resumed run draws the same unlabeled pairs as an unbroken one.
    resumed = _batches(cfg, unlabeled=True, count=1, start_step=2)[0]
    assert torch_equal(resumed['frames'], mixed[2]['frames'])


def test_the_unlabeled_ratio_sets_how_many_unlabeled_pairs_join():
    cfg = _data(unlabeled_clips=3)
    cfg.unlabeled_ratio = 1.5
    assert _batches(cfg, unlabeled=True, count=1)[0]['frames'].shape[0] == 2 + 3


@pytest.fixture(scope='module')
def drive(tmp_path_factory):
    return synth_bag(tmp_path_factory.mktemp('drive'), frames=6, size='64x128')


SIZE = (32, 64)     # the training size (data.eval_size) the drive's 64x128 frames go to


def _bag_frames(bag) -> list:
    from stkd_ros.bag.messages import decode
    from stkd_ros.bag.reader import iter_messages, open_bag
    with open_bag(bag) as reader:
        return [decode(t, m) for _, t, _, m in iter_messages(reader, ['/camera/image_raw'])]


def test_a_bag_topic_is_decoded_once_at_the_training_size_into_unlabeled_pairs(drive, tmp_path):
    video = BagVideo(drive, '/camera/image_raw', cache_dir=tmp_path, size=SIZE, gap=(1, 2))
    assert len(video) == 6 - 2
    clip = video[0]
    assert clip.frames.shape == (2,) + SIZE + (3,)
    assert (clip.labels == IGNORE_INDEX).all()
    assert video.sequence_size(video.name) == SIZE
    # Each frame once, resized as the model's input is and kept as JPEG: a few grey levels.
    for t, frame in enumerate(_bag_frames(drive)):
        expected = cv2.resize(frame, SIZE[::-1], interpolation=cv2.INTER_LINEAR)
        got = video.sequence_frame(video.name, t)[0]
        assert np.abs(got.astype(int) - expected).mean() < 3, t
    (pack,) = tmp_path.glob('*.jpgs')
    assert pack.name.endswith(f'_{SIZE[0]}x{SIZE[1]}.jpgs')
    bag_bytes = sum(f.stat().st_size for f in drive.rglob('*') if f.is_file())
    assert pack.stat().st_size < bag_bytes / 10
    stamp = pack.stat().st_mtime_ns
    BagVideo(drive, '/camera/image_raw', cache_dir=tmp_path, size=SIZE)
    assert pack.stat().st_mtime_ns == stamp          # read back, not decoded again
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        pack.name, f'{pack.name}.index.npy', f'{pack.name}.lock']


def test_a_training_loader_over_a_drive_decodes_nothing_until_a_clip_is_read(drive, tmp_path):
    cfg = _data(unlabeled_clips=0)
    cfg.unlabeled_bags, cfg.unlabeled_topic = [str(drive)], TOPIC
    cfg.frame_cache = str(tmp_path / 'frames')
    loader = train_loader(cfg, DataNeeds(frames=2, unlabeled=True), batch_size=2, seed=5,
                          start_step=0, workers=0, run_dir=tmp_path / 'run')
    # Its clips counted from the bag's index: one at each frame a gap of up to 3 leaves.
    assert len(loader.dataset.streams['unlabeled']) == 6 - max(cfg.gap)
    assert not list(tmp_path.rglob('*.jpgs'))
    batch = next(iter(loader))
    assert batch['frames'].shape[0] == 4
    assert [p.name for p in tmp_path.rglob('*.jpgs')] == [
        cache_path(drive, TOPIC, cfg.frame_cache, tuple(cfg.eval_size)).name]


def _decode_when_all_are_ready(barrier, bag, cache, decodes):
    """In a process of its own: decode ``bag`` at the same moment as the others."""
    seen = []
    handler = logging.Handler()
    handler.emit = seen.append
    logger = logging.getLogger('stkd_ros.data.bag_video')
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    barrier.wait()
    decode_topic(bag, TOPIC, cache, SIZE)
    decodes.put(sum(r.getMessage().startswith('decoding') for r in seen))


def test_processes_reading_one_new_drive_at_once_decode_it_once(drive, tmp_path):
    # Data-loader workers (and label shards) that first read one drive together: one decodes
    # it, the others wait for its pack and read that.
    context = multiprocessing.get_context('fork')
    barrier, decodes = context.Barrier(3), context.Queue()
    workers = [context.Process(target=_decode_when_all_are_ready,
                               args=(barrier, drive, tmp_path, decodes)) for _ in range(3)]
    for worker in workers:
        worker.start()
    counts = [decodes.get(timeout=120) for _ in workers]
    for worker in workers:
        worker.join()
        assert worker.exitcode == 0
    assert sorted(counts) == [0, 0, 1]
    video = BagVideo(drive, TOPIC, cache_dir=tmp_path, size=SIZE)
    expected = cv2.resize(_bag_frames(drive)[4], SIZE[::-1], interpolation=cv2.INTER_LINEAR)
    assert np.abs(video.sequence_frame(video.name, 4)[0].astype(int) - expected).mean() < 3


def test_a_torn_frame_pack_is_written_again_and_a_dead_writers_files_removed(drive, tmp_path):
    from stkd_ros.atomic_write import temporary_beside
    from stkd_ros.data.frame_pack import index_path
    path = cache_path(drive, TOPIC, tmp_path, SIZE)
    expected = BagVideo(drive, TOPIC, cache_dir=tmp_path, size=SIZE)[1].frames
    dead = _dead_pid()
    stale = temporary_beside(path).with_name(temporary_beside(path).name.replace(
        f'.{os.getpid()}.', f'.{dead}.'))
    alive = temporary_beside(path).with_name(temporary_beside(path).name.replace(
        f'.{os.getpid()}.', f'.{os.getppid()}.'))
    for torn in (lambda: path.write_bytes(path.read_bytes()[:-100]),    # killed mid-pack
                 lambda: index_path(path).unlink()):                    # before the index
        torn()
        stale.write_bytes(b'half a frame')
        alive.write_bytes(b'another writer, still running')
        video = BagVideo(drive, TOPIC, cache_dir=tmp_path, size=SIZE)
        np.testing.assert_array_equal(video[1].frames, expected)
        assert not stale.exists() and alive.exists()


def _dead_pid() -> int:
    """Return the id of a process that has ended."""
    child = subprocess.Popen(['true'])
    child.wait()
    return child.pid


def test_a_missing_topic_is_one_clear_error(drive, tmp_path):
    with pytest.raises(BagError, match='topic /camera/nothing is not in the bag'):
        BagVideo(drive, '/camera/nothing', cache_dir=tmp_path, size=SIZE)


def test_a_missing_or_corrupt_bag_is_one_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match='bag not found'):
        BagVideo(tmp_path / 'none', '/camera/image_raw', cache_dir=tmp_path, size=SIZE)
    broken = tmp_path / 'broken.mcap'
    broken.write_bytes(b'not a bag at all')
    with pytest.raises(BagError, match='cannot read bag'):
        BagVideo(broken, '/camera/image_raw', cache_dir=tmp_path, size=SIZE)


TOPIC = '/camera/image_raw'


@pytest.fixture(scope='module')
def other_drive(tmp_path_factory):
    """Another street, recorded into a folder of the same name ('bag')."""
    return synth_bag(tmp_path_factory.mktemp('other'), frames=6, size='64x128', seed=10)


def test_two_drives_in_folders_of_one_name_keep_their_own_cached_flow(drive, other_drive,
                                                                      tmp_path):
    assert drive.name == other_drive.name == 'bag'
    clips = [BagVideo(bag, TOPIC, cache_dir=tmp_path / 'frames', size=SIZE)[0]
             for bag in (drive, other_drive)]
    fresh = [build_flow('dis').between(clip, 0, 1) for clip in clips]
    assert np.abs(fresh[0] - fresh[1]).max() > 0.5
    flow, cfg = DistillFlowConfig(method='dis'), _data()
    for clip in clips:                                       # each drive fills the cache
        training_flow(flow, cfg, tmp_path).between(clip, 0, 1)
    cache = training_flow(flow, cfg, tmp_path)
    cached = [cache.between(clip, 0, 1) for clip in clips]
    assert (cache.hits, cache.misses) == (2, 0)
    for got, expected in zip(cached, fresh):               # float16 on disk
        np.testing.assert_allclose(got, expected, rtol=1e-3, atol=1e-3)


def _parts(folder, bag):
    """Copy the storage files of ``bag`` into ``folder`` (no metadata); return their glob."""
    folder.mkdir()
    for part in bag.glob('*.mcap'):
        shutil.copy(part, folder)
    return f'{folder}/*.mcap'


def test_a_glob_is_keyed_on_the_files_it_matches(drive, other_drive, tmp_path):
    source = _parts(tmp_path / 'a', drive)
    first = cache_path(source, TOPIC, tmp_path / 'frames', SIZE)
    video = BagVideo(source, TOPIC, cache_dir=tmp_path / 'frames', size=SIZE)
    assert '*' not in first.name and '*' not in video.name and '*' not in video[0].name
    (part,) = (tmp_path / 'a').glob('*.mcap')
    shutil.copy(next(other_drive.glob('*.mcap')), part)       # the files change
    assert cache_path(source, TOPIC, tmp_path / 'frames', SIZE) != first
    video = BagVideo(source, TOPIC, cache_dir=tmp_path / 'frames', size=SIZE)
    expected = BagVideo(other_drive, TOPIC, cache_dir=tmp_path / 'frames', size=SIZE)
    np.testing.assert_array_equal(video[0].frames, expected[0].frames)


def test_globs_and_folders_of_one_name_are_distinct_sources(drive, other_drive, tmp_path):
    globs = [_parts(tmp_path / 'a', drive), _parts(tmp_path / 'b', other_drive)]
    for bags in (globs, [str(drive), str(other_drive)]):
        cfg = _data()
        cfg.synthetic.unlabeled_clips, cfg.unlabeled_bags, cfg.unlabeled_topic = 0, bags, TOPIC
        cfg.frame_cache = str(tmp_path / 'frames')
        video = build_unlabeled(cfg, clip_length=1, gap=1)
        names = [s.name for s in video_sequences(video)]
        assert len(set(names)) == 2 and all('*' not in n and '/' not in n for n in names)
        identity = source_identity(cfg)
        assert all(f'bag(name={n[:-len("_camera_image_raw")]},' in identity for n in names)
        # Stable: the same sources, built again, have the same names.
        again = build_unlabeled(cfg, clip_length=1, gap=1)
        assert [s.name for s in video_sequences(again)] == names


def test_a_drive_recorded_again_at_the_same_path_is_other_video_to_a_store(
        drive, other_drive, tmp_path):
    # One folder, topic and frame count: a store's identity must still tell the drives apart.
    def identity(bag):
        cfg = _data()
        cfg.synthetic.unlabeled_clips, cfg.unlabeled_bags, cfg.unlabeled_topic = 0, [bag], TOPIC
        return source_identity(cfg)

    here = tmp_path / 'here' / 'bag'
    shutil.copytree(drive, here)
    first = identity(str(here))
    shutil.rmtree(here)
    shutil.copytree(other_drive, here)
    assert identity(str(here)) != first
    # The same drive copied elsewhere (another machine's disk) is the same video.
    elsewhere = tmp_path / 'elsewhere' / 'bag'
    shutil.copytree(other_drive, elsewhere)
    assert identity(str(elsewhere)) == identity(str(here))


@pytest.mark.slow
def test_stkd_distill_learns_from_a_recorded_drive(drive, tmp_path, monkeypatch):
    monkeypatch.setenv('XDG_CACHE_HOME', str(tmp_path / 'cache'))
    subprocess.run(_cmd('train-teacher', tmp_path / 't', 2, ['train.eval_every=2']),
                   check=True, capture_output=True)
    teacher = ['--teacher', str(tmp_path / 't' / 'model.safetensors')]
    args = _cmd('distill', tmp_path / 'd', 2, ['train.eval_every=2']) + teacher + [
        '--unlabeled-bag', str(drive), '--unlabeled-topic', '/camera/image_raw']
    res = subprocess.run(args, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-2000:]
    assert default_frame_cache() == tmp_path / 'cache' / 'stkd_ros' / 'frames'
    assert len(list(default_frame_cache().glob('*_64x128.jpgs'))) == 1
    assert not (tmp_path / 'd' / 'frame_cache').exists()
    with open(tmp_path / 'd' / 'metrics.csv', newline='') as f:
        assert 'train/pseudo_label' in {r['tag'] for r in csv.DictReader(f)}
    config = (tmp_path / 'd' / 'config.yaml').read_text()
    assert str(drive) in config and '/camera/image_raw' in config
    for extra, message in (
            (['--unlabeled-bag', str(tmp_path / 'none'), '--unlabeled-topic', '/x'],
             'bag not found'),
            (['--unlabeled-bag', str(drive), '--unlabeled-topic', '/camera/none'],
             'topic /camera/none is not in the bag'),
            (['--unlabeled-bag', str(drive)], 'data.unlabeled_topic')):
        res = subprocess.run(_cmd('distill', tmp_path / 'e', 1) + teacher + extra,
                             capture_output=True, text=True)
        last = res.stderr.strip().splitlines()[-1]
        assert res.returncode == 2 and message in last, res.stderr[-1500:]
