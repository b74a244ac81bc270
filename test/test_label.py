"""`stkd label`: the teacher labels unlabeled video once, into a store a person can open."""

import filecmp
import json
import os
from pathlib import Path
import re
import shutil
import subprocess
import sys
import time

from cli_helpers import _cmd, kill_after_frames, ROOT, synth_bag
import cv2
import numpy as np
import pytest
from stkd_ros.bag.reader import BagError
from stkd_ros.commands.label import label
from stkd_ros.config import load_config
from stkd_ros.data.classes import CAMVID_CLASSES, CAMVID_PALETTE, IGNORE_INDEX
from stkd_ros.data.image_io import write_label, write_rgb
from stkd_ros.data.unlabeled import build_unlabeled, unlabeled_streets
from stkd_ros.errors import InputError
from stkd_ros.flow import build_flow
from stkd_ros.inference import model_input, Segmenter
from stkd_ros.labeling.fusion import EstimatedLinks, fuse
from stkd_ros.labeling.identity import file_sha256, source_identity
from stkd_ros.labeling.labeler import hard_labels, label_sequence
from stkd_ros.labeling.passes import TeacherPasses
from stkd_ros.labeling.quality import store_quality
from stkd_ros.labeling.sources import parse_shard, Sequence, video_sequences
from stkd_ros.labeling.store import done_frames, LabelStore, StoreError, write_truth_store
from stkd_ros.model_file import load_model_file, save_model_file
from stkd_ros.models import build_model
import torch

CONFIG = str(ROOT / 'config' / 'distill' / 'synthetic.yaml')
#: Two never-labeled streets of six 32x64 frames; the tiny teacher's input is 32x64 too, so
#: one pass at scale 1 (it cannot run at the default's 0.75: PVT needs 32 pixels).
#: fp32: the store's labels are those of a plain forward on every machine (auto would
#: be bf16 on a CPU that has it).
ONE_PASS = ['label.scales=[1.0]', 'teacher.precision=fp32']
WORLD = ['data.synthetic.height=32', 'data.synthetic.width=64', 'data.synthetic.frames=6',
         'data.synthetic.unlabeled_clips=2', 'data.synthetic.train_clips=1'] + ONE_PASS
FUSED = ['label.fusion_radius=1', 'label.flip=true']
#: A recorded drive alone: the config's own never-labeled streets left out.
DRIVE_ONLY = ['data.synthetic.unlabeled_clips=0'] + ONE_PASS
TOPIC = '/camera/image_raw'


def _teacher_file(path, classes=CAMVID_CLASSES, seed=0):
    torch.manual_seed(seed)
    model = build_model('teacher', len(classes), size='tiny')
    save_model_file(path, model, {
        'arch': 'teacher', 'arch_args': {'size': 'tiny'}, 'num_classes': len(classes),
        'classes': list(classes), 'palette': CAMVID_PALETTE[:len(classes)].tolist(),
        'input_size': [32, 64], 'mean': [0.485, 0.456, 0.406], 'std': [0.229, 0.224, 0.225]})
    return path


@pytest.fixture(scope='module')
def teacher(tmp_path_factory):
    return _teacher_file(tmp_path_factory.mktemp('teacher') / 'teacher.safetensors')


@pytest.fixture(scope='module')
def fused_store(tmp_path_factory, teacher):
    """Label the two streets in one run, with flip and fusion of t-1..t+1 (DIS)."""
    out = tmp_path_factory.mktemp('stores') / 'fused'
    summary = label(CONFIG, teacher, out, overrides=WORLD + FUSED, progress=False)
    return out, summary


@pytest.fixture(scope='module')
def drive(tmp_path_factory):
    return synth_bag(tmp_path_factory.mktemp('drive'), frames=5, size='32x64')


@pytest.fixture
def frames(tmp_path, monkeypatch):
    """Give the test a user cache of its own; return where decoded frames go by default."""
    from stkd_ros.data.bag_video import default_frame_cache
    monkeypatch.setenv('XDG_CACHE_HOME', str(tmp_path / 'cache'))
    return default_frame_cache()


def _files(root):
    """Every frame file of a store, relative to it."""
    return sorted(str(p.relative_to(root)) for kind in ('labels', 'confidence')
                  for p in (Path(root) / kind).rglob('*.png'))


def _same_frames(a, b):
    names = _files(a)
    assert names == _files(b) and names
    _, mismatch, errors = filecmp.cmpfiles(a, b, names, shallow=False)
    assert not mismatch and not errors, mismatch[:5]


def _data_cfg(extra=()):
    return load_config(CONFIG, WORLD + list(extra)).data


# --- the store -------------------------------------------------------------------------------

def test_the_streets_are_labeled_into_images_and_a_manifest(fused_store, teacher):
    out, summary = fused_store
    assert summary['frames_labeled'] == 12 and summary['missing'] == 0
    manifest = json.loads((out / 'manifest.json').read_text())
    assert manifest['format'] == 'stkd_ros.labels' and manifest['version'] == 1
    assert manifest['oracle'] is False
    assert manifest['teacher_sha256'] == file_sha256(teacher)
    assert manifest['teacher_path'] == str(teacher)
    assert manifest['classes'] == list(CAMVID_CLASSES)
    assert manifest['source'] == source_identity(_data_cfg())
    assert 'split_seed=4000003' in manifest['source']
    assert manifest['settings'] == {'scales': [1.0], 'flip': True, 'fusion_radius': 1,
                                    'fusion_flow': 'dis', 'fusion_flow_args': {}, 'batch': 8}
    assert manifest['teacher_precision'] == 'fp32'
    assert manifest['sequences'] == {f'synthetic_4000003_0000{i}': {'frames': 6, 'size': [32, 64]}
                                     for i in range(2)}
    # Plain PNGs any viewer opens: one channel of class ids, one of confidence x 255.
    labels = cv2.imread(str(out / 'labels' / 'synthetic_4000003_00001' / '000005.png'),
                        cv2.IMREAD_UNCHANGED)
    confidence = cv2.imread(str(out / 'confidence' / 'synthetic_4000003_00001' / '000005.png'),
                            cv2.IMREAD_UNCHANGED)
    assert labels.shape == confidence.shape == (32, 64) and labels.dtype == np.uint8
    assert labels.max() < len(CAMVID_CLASSES)
    assert 255 // len(CAMVID_CLASSES) <= confidence.min()      # a top class has >= 1/K
    store = LabelStore.open(out)
    read = store.read('synthetic_4000003_00001', 5)
    assert (read[0] == labels).all() and (read[1] == confidence).all()
    assert store.teacher_sha256 == file_sha256(teacher) and store.source == manifest['source']
    assert not any(p.name.endswith('.tmp.png') for p in out.rglob('*'))


def test_one_pass_labels_are_the_segmenters_masks(tmp_path, teacher):
    # scale 1, no flip, no fusion: the argmax of the one preprocessing the node uses.
    summary = label(CONFIG, teacher, tmp_path / 's', overrides=WORLD, progress=False)
    assert summary['passes'] == 1
    store = LabelStore.open(tmp_path / 's')
    streets = unlabeled_streets(_data_cfg())
    segmenter = Segmenter(teacher)
    for name, frames in streets.list_sequences():
        for t in (0, frames - 1):
            frame = streets.sequence_frame(name, t)[0]
            np.testing.assert_array_equal(store.read(name, t)[0], segmenter.segment(frame))


def test_a_clip_names_its_frames_as_the_store_does(fused_store):
    out, _ = fused_store
    store = LabelStore.open(out)
    # What distillation draws: pairs two frames apart from the unlabeled streets.
    streets = build_unlabeled(_data_cfg(), clip_length=2, gap=(2, 2))
    clip = streets[3]
    assert clip.sequence in store.sequences and len(clip.times) == 2
    assert clip.times[1] - clip.times[0] == 2
    for i, t in enumerate(clip.times):
        frame, truth = streets.sequence_frame(clip.sequence, t)
        assert (frame == clip.frames[i]).all() and truth.shape == frame.shape[:2]
        store.read(clip.sequence, t)
    assert (clip.labels == IGNORE_INDEX).all()      # never-labeled to training, as before


def test_the_quality_report_scores_the_stored_labels(fused_store):
    out, summary = fused_store
    quality = json.loads((out / 'quality.json').read_text())
    assert quality == json.loads(json.dumps(summary['quality']))
    assert quality['frames'] == 12 and 0 <= quality['miou'] <= 1
    # Independently: coverage and accuracy at a threshold the random teacher's confidence
    # straddles, counted straight from the files and the world's truth.
    store = LabelStore.open(out)
    streets = unlabeled_streets(_data_cfg())
    conf = np.concatenate([store.read(n, t)[1].ravel() for n in store.sequences
                           for t in range(6)])
    level = float(np.median(conf)) / 255
    q = store_quality(store, video_sequences(streets), thresholds=(0.0, level, 1.0))
    kept = right = scored = 0
    for name in store.sequences:
        for t in range(6):
            labels, confidence = store.read(name, t)
            truth = streets.sequence_frame(name, t)[1]
            valid = truth != IGNORE_INDEX
            keep = valid & (confidence >= round(level * 255))
            kept, right = kept + keep.sum(), right + (keep & (labels == truth)).sum()
            scored += valid.sum()
    assert q['pixels'] == scored
    assert q['coverage'][0] == {'threshold': 0.0, 'coverage': 1.0,
                                'accuracy': pytest.approx(q['pixel_accuracy'])}
    assert q['coverage'][1]['coverage'] == pytest.approx(kept / scored)
    assert q['coverage'][1]['accuracy'] == pytest.approx(right / kept)
    assert 0 < kept < scored
    coverages = [row['coverage'] for row in quality['coverage']]
    assert coverages == sorted(coverages, reverse=True)


def test_a_ground_truth_store_scores_one_and_names_itself_an_oracle(tmp_path):
    cfg = _data_cfg()
    store = write_truth_store(tmp_path / 'truth', cfg)
    assert store.oracle and store.teacher_sha256 == 'ground_truth'
    assert store.source == source_identity(cfg)
    quality = store_quality(store, video_sequences(unlabeled_streets(cfg)))
    assert quality['miou'] == 1.0 and quality['pixel_accuracy'] == 1.0
    assert all(row['coverage'] == 1.0 and row['accuracy'] == 1.0
               for row in quality['coverage'])
    labels, confidence = store.read('synthetic_4000003_00000', 2)
    truth = unlabeled_streets(cfg).sequence_frame('synthetic_4000003_00000', 2)[1]
    assert (labels == truth).all() and (confidence == 255).all()


# --- resume and shards -----------------------------------------------------------------------

def test_a_rerun_labels_only_the_missing_frames_and_gives_the_same_files(tmp_path, teacher,
                                                                         fused_store):
    done, _ = fused_store
    out = tmp_path / 'resumed'
    shutil.copytree(done, out)
    (out / 'quality.json').unlink()
    street = 'synthetic_4000003_00000'
    (out / 'labels' / street / '000002.png').unlink()        # killed between its two files
    for kind in ('labels', 'confidence'):
        (out / kind / street / '000004.png').unlink()
    (out / 'labels' / street / '000004.12345.tmp.png').write_bytes(b'half')
    kept = {p: p.stat().st_mtime_ns for p in (out / 'labels').rglob('*.png')}
    time.sleep(0.01)
    summary = label(CONFIG, teacher, out, overrides=WORLD + FUSED, progress=False)
    assert summary['frames_labeled'] == 2
    _same_frames(done, out)
    assert all(p.stat().st_mtime_ns == stamp for p, stamp in kept.items() if p.exists())
    assert not list(out.rglob('*.tmp.png'))
    assert (out / 'quality.json').is_file()
    assert label(CONFIG, teacher, out, overrides=WORLD + FUSED,
                 progress=False)['frames_labeled'] == 0


@pytest.mark.slow
def test_a_killed_labeling_resumes_where_it_stopped(tmp_path, teacher):
    world = [w.replace('frames=6', 'frames=30') for w in WORLD]
    args = [sys.executable, '-m', 'stkd_ros.cli', 'label', '--config', CONFIG, '--teacher',
            str(teacher), '--device', 'cpu']
    for item in world + ['label.flip=true']:
        args += ['--set', item]
    killed = tmp_path / 'killed'
    kill_after_frames(args, killed)
    partial = sum(len(done_frames(killed, f'synthetic_4000003_0000{i}')) for i in range(2))
    assert 5 <= partial < 60, 'the labeling ended before it could be killed'
    res = subprocess.run(args + ['--out', str(killed)], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-2000:]
    assert f'label: {60 - partial} frames labeled' in res.stdout
    whole = tmp_path / 'whole'
    res = subprocess.run(args + ['--out', str(whole)], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-2000:]
    _same_frames(whole, killed)


def test_two_shards_fill_one_store_as_one_run_does(tmp_path, teacher, fused_store):
    done, _ = fused_store
    out = tmp_path / 'sharded'
    first = label(CONFIG, teacher, out, overrides=WORLD + FUSED, shard='1/2', progress=False)
    assert first['frames_labeled'] == 6 and first['missing'] == 6
    assert not (out / 'quality.json').exists()
    with pytest.raises(StoreError, match='synthetic_4000003_00000 frame 0 has no labels '
                                         '.6 frames missing.*stkd label'):
        LabelStore.open(out)
    second = label(CONFIG, teacher, out, overrides=WORLD + FUSED, shard='0/2', progress=False)
    assert second['frames_labeled'] == 6 and second['missing'] == 0
    _same_frames(done, out)
    assert json.loads((out / 'manifest.json').read_text()) == json.loads(
        (done / 'manifest.json').read_text())
    assert second['quality']['miou'] == pytest.approx(json.loads(
        (done / 'quality.json').read_text())['miou'])


def test_shards_labeled_apart_merge_by_copying_folders(tmp_path, teacher, fused_store):
    done, _ = fused_store
    for i in (0, 1):
        label(CONFIG, teacher, tmp_path / f'copy{i}', overrides=WORLD + FUSED, shard=f'{i}/2',
              progress=False)
    shutil.copytree(tmp_path / 'copy1', tmp_path / 'copy0', dirs_exist_ok=True)
    LabelStore.open(tmp_path / 'copy0')
    _same_frames(done, tmp_path / 'copy0')


def _label_args(teacher, out, sets):
    args = [sys.executable, '-m', 'stkd_ros.cli', 'label', '--config', CONFIG, '--teacher',
            str(teacher), '--out', str(out), '--device', 'cpu']
    return args + [a for item in sets for a in ('--set', item)]


def test_torchrun_ranks_label_their_shards_into_one_store(tmp_path, teacher, fused_store):
    """Two ranks at once, their shard from RANK and WORLD_SIZE alone, as torchrun starts them."""
    done, _ = fused_store
    out = tmp_path / 'ranks'
    env = {k: v for k, v in os.environ.items() if k not in ('RANK', 'WORLD_SIZE')}
    ranks = [subprocess.Popen(_label_args(teacher, out, WORLD + FUSED), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True,
                              env={**env, 'RANK': str(r), 'WORLD_SIZE': '2'}) for r in (0, 1)]
    for rank, proc in enumerate(ranks):
        stdout, stderr = proc.communicate()
        assert proc.returncode == 0, stderr[-2000:]
        assert f'label: 6 frames labeled into {out} (shard {rank}/2' in stdout
    _same_frames(done, out)
    assert json.loads((out / 'manifest.json').read_text()) == json.loads(
        (done / 'manifest.json').read_text())
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in done.iterdir())
    assert not list(out.rglob('*.tmp*'))


def test_an_explicit_shard_must_agree_with_torchruns(monkeypatch):
    from stkd_ros.labeling.sources import resolve_shard
    assert resolve_shard(None, {}) == (0, 1)
    assert resolve_shard('1/3', {}) == (1, 3)
    assert resolve_shard(None, {'RANK': '1', 'WORLD_SIZE': '2'}) == (1, 2)
    assert resolve_shard('1/2', {'RANK': '1', 'WORLD_SIZE': '2'}) == (1, 2)
    for shard, env, message in (
            ('0/2', {'RANK': '1', 'WORLD_SIZE': '2'},
             "--shard 0/2 disagrees with torchrun's RANK=1 WORLD_SIZE=2; give one or the other"),
            ('0/1', {'RANK': '0', 'WORLD_SIZE': '2'}, 'disagrees'),
            (None, {'RANK': '2', 'WORLD_SIZE': '2'}, 'RANK=2 WORLD_SIZE=2 is no shard'),
            (None, {'RANK': '0'}, 'RANK=0 WORLD_SIZE=None is no shard')):
        with pytest.raises(InputError, match=message):
            resolve_shard(shard, env)


# --- test-time augmentation and fusion -------------------------------------------------------

@pytest.fixture(scope='module')
def teacher_model(teacher):
    return load_model_file(teacher)


def _frame(seed=1, h=32, w=64):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_one_pass_is_the_softmax_of_the_models_input(teacher_model):
    model, meta = teacher_model
    frame = _frame()
    probs = TeacherPasses(model, meta).probabilities(frame)
    with torch.no_grad():
        x = torch.from_numpy(model_input(frame[None], (32, 64), meta['mean'], meta['std']))
        expected = model(x)['logits'].softmax(1)[0]
    torch.testing.assert_close(probs, expected)


def test_the_flipped_pass_is_mirrored_back(teacher_model):
    # With flip, the averaged prediction of a mirrored frame is the mirrored prediction.
    model, meta = teacher_model
    passes = TeacherPasses(model, meta, flip=True)
    frame = _frame(2)
    torch.testing.assert_close(passes.probabilities(frame[:, ::-1].copy()),
                               passes.probabilities(frame).flip(-1), atol=1e-5, rtol=1e-4)
    plain = TeacherPasses(model, meta).probabilities(frame)
    assert not torch.allclose(plain, plain.flip(-1), atol=1e-3)    # not trivially symmetric


def test_scales_average_into_probabilities_at_the_frames_size(teacher_model):
    model, meta = teacher_model
    frame = _frame(3, 40, 72)
    passes = TeacherPasses(model, meta, scales=[1.0, 1.5], flip=True)
    assert passes.sizes == [(32, 64), (48, 96)] and passes.passes == 4
    probs = passes.probabilities(frame)
    assert probs.shape == (11, 40, 72)
    torch.testing.assert_close(probs.sum(0), torch.ones(40, 72))
    single = TeacherPasses(model, meta, scales=[1.5]).probabilities(frame)
    assert not torch.allclose(probs, single)


def test_fusion_averages_aligned_neighbours_where_the_flow_is_trusted():
    probs = torch.rand(3, 8, 12).softmax(0)
    shifted = torch.roll(probs, shifts=2, dims=-1)          # the scene moved 2 pixels right
    flow = torch.zeros(1, 2, 8, 12)
    flow[:, 0] = 2.0
    everywhere = torch.ones(8, 12, dtype=torch.bool)
    fused = fuse(probs, [(shifted, (flow, everywhere))])
    torch.testing.assert_close(fused[..., :10], probs[..., :10])
    other = torch.rand(3, 8, 12).softmax(0)
    torch.testing.assert_close(fuse(probs, [(other, (flow, ~everywhere))]), probs)
    still = torch.zeros(1, 2, 8, 12)
    torch.testing.assert_close(fuse(probs, [(other, (still, everywhere))]),
                               (probs + other) / 2)


class StillVideo:
    """A camera that does not move: every frame of a sequence is the same picture."""

    def __init__(self, frame, frames=5):
        self.frame, self.frames = frame, frames

    def __len__(self):
        return self.frames

    def list_sequences(self):
        return [('still', self.frames)]

    def sequence_size(self, name):
        return self.frame.shape[:2]

    def sequence_frame(self, name, t):
        return self.frame.copy(), None

    def sequence_truth(self, name, t):
        return None


def test_without_motion_fusion_leaves_the_labels_unchanged(teacher_model):
    model, meta = teacher_model
    (sequence,) = video_sequences(StillVideo(_frame(4)))
    passes = TeacherPasses(model, meta)
    alone = [hard_labels(p) for _, p in label_sequence(sequence, passes, range(5))]
    links = EstimatedLinks(build_flow('dis'))
    fused = [hard_labels(p)
             for _, p in label_sequence(sequence, passes, range(5), radius=2, links=links)]
    for (labels, confidence), (fused_labels, fused_confidence) in zip(alone, fused):
        assert (labels == fused_labels).all()
        assert np.abs(confidence.astype(int) - fused_confidence).max() <= 1


@pytest.mark.parametrize('batch', [1, 4])
def test_the_window_runs_the_teacher_once_per_frame(teacher_model, batch):
    model, meta = teacher_model
    (sequence,) = video_sequences(StillVideo(_frame(5), frames=6))
    passes = TeacherPasses(model, meta)
    seen = []
    original = passes.batch_probabilities
    passes.batch_probabilities = lambda frames: seen.append(len(frames)) or original(frames)
    done = [t for t, _ in label_sequence(sequence, passes, [1, 4], radius=1, batch=batch,
                                         links=EstimatedLinks(build_flow('dis')))]
    # Frames 0-2 and 3-5, each once: six calls of one, or two of four (the last padded).
    assert done == [1, 4] and seen == [batch] * -(-6 // batch)


def test_exact_flow_fusion_is_a_named_oracle(tmp_path, teacher, capsys):
    from stkd_ros.cli import main
    extra = WORLD + ['label.fusion_radius=1', 'label.fusion_flow=ground_truth']
    args = ['label', '--config', CONFIG, '--teacher', str(teacher), '--out',
            str(tmp_path / 'oracle')]
    assert main(args + [x for item in extra for x in ('--set', item)]) == 0
    assert 'ORACLE' in capsys.readouterr().out
    store = LabelStore.open(tmp_path / 'oracle')
    assert store.oracle and store.quality['oracle'] is True


def test_review_writes_the_first_sequences_as_video_to_scrub_through(tmp_path, fused_store,
                                                                     teacher, capsys):
    import av
    from stkd_ros.cli import main
    out = tmp_path / 'store'
    shutil.copytree(fused_store[0], out)
    args = ['label', '--config', CONFIG, '--teacher', str(teacher), '--out', str(out),
            '--review', '1'] + [x for item in WORLD + FUSED for x in ('--set', item)]
    assert main(args) == 0                                  # nothing to label: review only
    video = out / 'review' / 'synthetic_4000003_00000.mp4'
    assert f'review: {video}' in capsys.readouterr().out
    assert sorted(p.name for p in (out / 'review').iterdir()) == [video.name]
    with av.open(str(video)) as container:
        frames = list(container.decode(video=0))
    assert len(frames) == 6                                 # the sequence's frames, in order
    assert [round(f.time, 3) for f in frames] == [t / 10 for t in range(6)]
    assert main(args) == 0                                  # the store with its review reopens
    LabelStore.open(out)


# --- other sources ---------------------------------------------------------------------------

def test_a_recorded_drive_is_labeled(tmp_path, teacher, drive, frames):
    out = tmp_path / 'drive'
    summary = label(CONFIG, teacher, out, bags=[drive], topic=TOPIC, overrides=DRIVE_ONLY,
                    progress=False)
    assert summary['frames_labeled'] == 5 and summary['missing'] == 0
    assert summary['quality'] is None                       # a drive has no ground truth
    store = LabelStore.open(out)
    assert list(store.sequences) == ['bag_camera_image_raw']
    assert re.fullmatch(f'bag\\(name=bag,topic={TOPIC},frames=5,content=[0-9a-f]{{16}},'
                        f'size=128x256\\)', store.source), store.source
    assert store.source == source_identity(load_config(CONFIG, DRIVE_ONLY).data, [drive], TOPIC)
    assert not (out / 'frame_cache').exists()             # decoded into the shared cache
    from stkd_ros.data.bag_video import BagVideo, cache_path
    assert list(frames.glob('*.jpgs')) == [cache_path(drive, TOPIC, frames, (128, 256))]
    video = BagVideo(drive, TOPIC, cache_dir=frames, size=(128, 256))
    clip = video[2]
    assert clip.sequence == 'bag_camera_image_raw' and clip.times == (2, 3)
    assert (clip.frames[1] == video.sequence_frame(clip.sequence, 3)[0]).all()
    store.read(clip.sequence, 3)


def test_a_shard_decodes_only_the_drives_it_labels(tmp_path, teacher, drive, frames):
    other = synth_bag(tmp_path / 'other', frames=5, size='32x64', seed=10)
    out = tmp_path / 'store'
    summary = label(CONFIG, teacher, out, bags=[drive, other], topic=TOPIC, shard='1/2',
                    overrides=DRIVE_ONLY, progress=False)
    assert summary['frames_labeled'] == 5 and summary['missing'] == 5
    # Shard 1 of 2 labels the second drive, and decodes it alone.
    from stkd_ros.data.bag_video import cache_path
    from stkd_ros.labeling.store import read_manifest
    assert [bool(done_frames(out, n)) for n in read_manifest(out)['sequences']] == [False, True]
    assert list(frames.glob('*.jpgs')) == [cache_path(other, TOPIC, frames, (128, 256))]


def test_topic_alone_names_the_topic_of_the_configs_bags(tmp_path, teacher, drive, frames):
    # As stkd distill --unlabeled-topic: the config names the drive, the command its topic.
    in_config = DRIVE_ONLY + [f'data.unlabeled_bags={json.dumps([str(drive)])}']
    summary = label(CONFIG, teacher, tmp_path / 'store', topic=TOPIC, overrides=in_config,
                    progress=False)
    assert summary['frames_labeled'] == 5 and summary['missing'] == 0
    assert LabelStore.open(tmp_path / 'store').source == source_identity(
        load_config(CONFIG, in_config + [f'data.unlabeled_topic={TOPIC}']).data)
    # And --bag alone reads the config's topic.
    with_topic = DRIVE_ONLY + [f'data.unlabeled_topic={TOPIC}']
    summary = label(CONFIG, teacher, tmp_path / 'again', bags=[drive], overrides=with_topic,
                    progress=False)
    assert summary['frames_labeled'] == 5


@pytest.mark.slow
def test_label_then_distill_decode_the_drive_once(tmp_path, teacher, drive, frames):
    from cli_helpers import TINY
    store = tmp_path / 'store'
    label(CONFIG, teacher, store, bags=[drive], topic=TOPIC, overrides=TINY + DRIVE_ONLY,
          progress=False)
    (pack,) = frames.glob('*.jpgs')
    before = pack.stat()
    res = subprocess.run(_cmd('distill', tmp_path / 'd', 1, DRIVE_ONLY) + [
        '--teacher', str(teacher), '--labels', str(store), '--unlabeled-bag', str(drive),
        '--unlabeled-topic', TOPIC], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-2000:]
    # The one pack label made, read by distill as it was: not written again, nor elsewhere.
    assert list(tmp_path.rglob('*.jpgs')) == [pack]
    assert (pack.stat().st_ino, pack.stat().st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


@pytest.mark.slow
def test_label_bag_and_distill_unlabeled_bag_both_add_to_the_configs_bags(tmp_path, teacher,
                                                                          drive):
    # The config names one drive, the command line another: both commands take both, so the
    # store labeled with `stkd label --bag` is the video `stkd distill --unlabeled-bag` reads.
    from stkd_ros.cli import build_parser
    from stkd_ros.config import load_config as read_config
    from cli_helpers import TINY
    other = synth_bag(tmp_path / 'other', frames=5, size='32x64', seed=10)
    in_config = DRIVE_ONLY + [f'data.unlabeled_bags={json.dumps([str(drive)])}',
                              f'data.unlabeled_topic={TOPIC}']
    out = tmp_path / 'store'
    label(CONFIG, teacher, out, bags=[other], topic=TOPIC, overrides=TINY + in_config,
          progress=False)
    assert len(LabelStore.open(out).sequences) == 2
    res = subprocess.run(_cmd('distill', tmp_path / 'd', 1, in_config) + [
        '--teacher', str(teacher), '--labels', str(out), '--unlabeled-bag', str(other),
        '--unlabeled-topic', TOPIC], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-2000:]
    saved = read_config(tmp_path / 'd' / 'config.yaml')
    assert saved.data.unlabeled_bags == [str(drive), str(other)]
    helps = {name: p.format_help() for name, p in
             build_parser()._subparsers._group_actions[0].choices.items()}
    for command in ('label', 'distill'):
        assert "added to the config's data.unlabeled_bags" in ' '.join(helps[command].split())


def test_split_drives_in_folders_of_one_name_make_a_store_distill_reads(tmp_path, teacher,
                                                                        drive):
    # Two globs of MCAP files named alike, in folders a and b: two sequences, named without a
    # '*', that distill's check of the same sources finds in the store.
    from stkd_ros.training.commands import check_label_store
    other = synth_bag(tmp_path / 'other', frames=5, size='32x64', seed=10)
    sources = []
    for folder, bag in (('a', drive), ('b', other)):
        (tmp_path / folder).mkdir()
        for part in bag.glob('*.mcap'):
            shutil.copy(part, tmp_path / folder)
        sources.append(f'{tmp_path / folder}/*.mcap')
    out = tmp_path / 'store'
    summary = label(CONFIG, teacher, out, bags=sources, topic=TOPIC, overrides=DRIVE_ONLY,
                    progress=False)
    assert summary['frames_labeled'] == 10 and summary['missing'] == 0
    names = list(LabelStore.open(out).sequences)
    assert len(names) == 2 and not any('*' in n for n in names)
    assert names[0].startswith('a_') and names[1].startswith('b_')
    cfg = load_config(CONFIG, DRIVE_ONLY + [f'data.unlabeled_bags={json.dumps(sources)}',
                                            f'data.unlabeled_topic={TOPIC}',
                                            f'data.labels={out}'])
    check_label_store(cfg, teacher)


def _camvid_video_tree(root, rng):
    for n in range(4):
        write_rgb(root / 'sequences' / '0001TP' / f'0001TP_{n:06d}.png',
                  rng.integers(0, 256, (32, 64, 3), dtype=np.uint8))
    # One frame of the drive is annotated (SegNet files: 11 = void), at half the size.
    annot = np.full((16, 32), 3, np.uint8)
    annot[:, :8] = 11
    write_label(root / 'trainannot' / '0001TP_000002.png', annot)


def test_camvid_video_is_labeled_and_scored_on_its_annotated_frames(tmp_path, teacher):
    _camvid_video_tree(tmp_path / 'camvid', np.random.default_rng(0))
    sets = ['data.dataset=camvid', f'data.root={tmp_path / "camvid"}',
            'data.unlabeled_video=true'] + ONE_PASS
    summary = label(CONFIG, teacher, tmp_path / 'store', overrides=sets, progress=False)
    assert summary['frames_labeled'] == 4
    assert summary['quality']['frames'] == 1 and summary['quality']['pixels'] == 32 * 48
    store = LabelStore.open(tmp_path / 'store')
    assert list(store.sequences) == ['0001TP_000000']
    assert store.source == 'camvid_video(root=camvid,frames=4)'


def test_cityscapes_video_names_runs_and_finds_fine_labels(tmp_path):
    from stkd_ros.data.cityscapes import cityscapes_video
    root = tmp_path / 'cs'
    for frame in range(17, 21):
        write_rgb(root / 'leftImg8bit_sequence' / 'train' / 'bonn'
                  / f'bonn_000003_{frame:06d}_leftImg8bit.png', np.zeros((4, 6, 3), np.uint8))
    write_label(root / 'gtFine' / 'train' / 'bonn' / 'bonn_000003_000019_gtFine_labelIds.png',
                np.full((4, 6), 7, np.uint8))             # road -> trainId 0
    video = cityscapes_video(root, clip_length=2)
    assert video.list_sequences() == [('bonn_000003_000017', 4)]
    assert video.sequence_size('bonn_000003_000017') == (4, 6)
    assert video.sequence_frame('bonn_000003_000017', 0)[1] is None
    assert (video.sequence_frame('bonn_000003_000017', 2)[1] == 0).all()
    assert (video.sequence_truth('bonn_000003_000017', 2) == 0).all()
    clip = video[1]
    assert clip.sequence == 'bonn_000003_000017' and clip.times == (1, 2)


# --- one-line errors -------------------------------------------------------------------------

def test_bad_input_stops_with_one_line(tmp_path, teacher, drive, fused_store):
    done, _ = fused_store
    other = _teacher_file(tmp_path / 'other.safetensors', seed=1)
    wrong = _teacher_file(tmp_path / 'wrong.safetensors', classes=CAMVID_CLASSES[::-1])
    cases = [
        ({'teacher': tmp_path / 'none.safetensors'}, FileNotFoundError,
         'teacher model file not found'),
        ({'bags': [tmp_path / 'nobag'], 'topic': TOPIC, 'overrides': DRIVE_ONLY},
         FileNotFoundError, 'bag not found'),
        ({'bags': [drive], 'topic': '/camera/nothing', 'overrides': DRIVE_ONLY}, BagError,
         'topic /camera/nothing is not in the bag'),
        ({'bags': [drive], 'overrides': DRIVE_ONLY}, InputError, '--bag needs --topic'),
        ({'topic': TOPIC, 'overrides': DRIVE_ONLY}, InputError,
         f'--topic {TOPIC}: no bags to read it from; give --bag PATH or set '
         f'data.unlabeled_bags in {re.escape(CONFIG)}'),
        ({'overrides': DRIVE_ONLY}, InputError, 'has no unlabeled video to label'),
        ({'teacher': wrong}, InputError, 'predicts 11 classes .bicyclist'),
        ({'out': done, 'teacher': other}, StoreError, 'another teacher'),
        ({'out': done, 'overrides': WORLD + ['label.flip=true', 'label.fusion_radius=2']},
         StoreError, 'another label settings .fusion_radius: 1 there, 2 here'),
        ({'out': done, 'overrides': WORLD + FUSED + ['data.synthetic.seed=5']}, StoreError,
         'another video source'),
        ({'out': tmp_path}, StoreError, 'is not a label store'),
        ({'overrides': WORLD + ['label.scales=[0.25,1]']}, InputError,
         'label.scales: the teacher cannot run at scale 0.25 .8x16'),
        ({'shard': '2/2'}, InputError, 'expected I/N with 0 <= I < N'),
        ({'shard': 'one'}, InputError, "got 'one'"),
        ({'bags': [drive], 'topic': TOPIC, 'overrides': DRIVE_ONLY + FUSED + [
            'label.fusion_flow=ground_truth']}, InputError, 'recorded video has none'),
    ]
    for change, error, message in cases:
        kwargs = {'teacher': teacher, 'out': tmp_path / 'new', 'progress': False,
                  'overrides': WORLD + ['label.fusion_radius=2']}
        kwargs.update(change)
        with pytest.raises(error, match=message) as caught:
            label(CONFIG, kwargs.pop('teacher'), kwargs.pop('out'), **kwargs)
        assert '\n' not in str(caught.value)
    with pytest.raises(StoreError, match='label store not found'):
        LabelStore.open(tmp_path / 'nowhere')
    with pytest.raises(StoreError, match='no manifest.json'):
        LabelStore.open(tmp_path)
    with pytest.raises(StoreError, match='has no sequence'):
        LabelStore.open(done).read('synthetic_9_00000', 0)
    with pytest.raises(InputError, match='label.fusion_flow: expected one of dis, raft'):
        load_config(CONFIG, ['label.fusion_flow=farneback'])
    assert parse_shard('3/4') == (3, 4)


def test_a_negative_review_count_is_one_line(tmp_path, teacher):
    with pytest.raises(InputError, match='--review: a number of sequences'):
        label(CONFIG, teacher, tmp_path / 'out', overrides=WORLD, review=-1, progress=False)


def test_the_command_prints_errors_in_one_line(tmp_path, teacher):
    res = subprocess.run([sys.executable, '-m', 'stkd_ros.cli', 'label', '--config', CONFIG,
                          '--teacher', str(teacher), '--out', str(tmp_path / 's'),
                          '--shard', '1/1'], capture_output=True, text=True)
    assert res.returncode == 2
    assert res.stderr.strip().splitlines() == [
        "stkd label: error: --shard: expected I/N with 0 <= I < N (e.g. 0/4), got '1/1'"]


def test_sequences_keep_unique_names():
    with pytest.raises(InputError, match="two unlabeled sequences are named 'still'"):
        video_sequences(torch.utils.data.ConcatDataset([StillVideo(_frame()),
                                                        StillVideo(_frame())]))
    assert Sequence(StillVideo(_frame()), 'still', 5).size() == (32, 64)


def test_the_store_records_the_precision_its_teacher_labeled_at(tmp_path, teacher):
    bf16 = WORLD[:-1] + ['teacher.precision=bf16']
    label(CONFIG, teacher, tmp_path / 's', overrides=bf16, progress=False)
    manifest = json.loads((tmp_path / 's' / 'manifest.json').read_text())
    assert manifest['teacher_precision'] == 'bf16'
    # A store is resumed only at the precision it was begun with.
    with pytest.raises(InputError):
        label(CONFIG, teacher, tmp_path / 's', overrides=WORLD, progress=False)
