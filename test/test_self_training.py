"""`stkd train-teacher --labels STORE`: the next teacher learns from label stores too."""

import json
import subprocess
import sys

from cli_helpers import CONFIG
import numpy as np
import pytest
from stkd_ros.commands.propagate import propagate_labels
from stkd_ros.config import load_config
from stkd_ros.data.camvid import camvid_video
from stkd_ros.data.classes import CAMVID_CLASSES, IGNORE_INDEX
from stkd_ros.data.datasets import build_clips
from stkd_ros.data.image_io import write_label, write_rgb
from stkd_ros.data.unlabeled import build_unlabeled
from stkd_ros.errors import InputError
from stkd_ros.inference import Segmenter
from stkd_ros.labeling.identity import CARRIED_TRUTH, labeled_video_identity, source_identity
from stkd_ros.labeling.labeled_video import labeled_sequences
from stkd_ros.labeling.sources import video_sequences
from stkd_ros.labeling.store import (LabelStore, new_manifest, prepare_store, StoreError,
                                     write_frame)
from stkd_ros.training.commands import train_teacher
from stkd_ros.training.data_needs import DataNeeds
from stkd_ros.training.loader import train_loader
from stkd_ros.training.self_training import train_teacher_with_stores
from stkd_ros.training.store_frames import stores_as_clips

#: A world of 32x64 frames: two labeled streets of six frames (labeled at frame 3), two
#: never-labeled ones, two held out; the tiny teacher trains at that size.
WORLD = ['data.crop_size=[32,64]', 'data.eval_size=[32,64]', 'data.scale_range=[1.0,1.0]',
         'data.gap=[1,1]',
         'data.synthetic.height=32', 'data.synthetic.width=64', 'data.synthetic.frames=6',
         'data.synthetic.train_clips=2', 'data.synthetic.val_clips=2',
         'data.synthetic.keys_per_clip=2', 'data.synthetic.unlabeled_clips=2',
         'data.synthetic.label_every=6', 'train.batch_size=2', 'train.workers=0',
         'train.warmup_steps=2', 'train.log_every=5', 'train.eval_every=1000',
         'train.checkpoint_every=1000', 'train.optimizer=adamw', 'train.lr=0.003',
         'evaluation.max_clips=1', 'evaluation.flow=ground_truth']
#: The class the one-class store labels every pixel with: rare in the world's truth.
BICYCLIST = CAMVID_CLASSES.index('bicyclist')


def _cfg(extra=()):
    return load_config(CONFIG, WORLD + list(extra))


def _one_class_store(out, data_cfg, cls=BICYCLIST, classes=CAMVID_CLASSES, *, sequences=None,
                     **manifest):
    """Write a store of the never-labeled streets (or ``sequences``), every pixel ``cls``."""
    sequences = sequences or video_sequences(build_unlabeled(data_cfg, clip_length=1, gap=1))
    manifest.setdefault('teacher_sha256', 'f' * 64)
    if 'source' not in manifest:
        manifest['source'] = source_identity(data_cfg)
    prepare_store(out, new_manifest(teacher_path=None, classes=classes,
                                    settings={'one_class': cls}, oracle=False,
                                    sequences=sequences, **manifest))
    for sequence in sequences:
        for t in range(sequence.frames):
            labels = np.full(sequence.size(), cls, np.uint8)
            write_frame(out, sequence.name, t, labels, np.full_like(labels, 255))
    return out


@pytest.fixture(scope='module')
def one_class(tmp_path_factory):
    return _one_class_store(tmp_path_factory.mktemp('stores') / 'one_class', _cfg().data)


@pytest.fixture(scope='module')
def carried(tmp_path_factory):
    out = tmp_path_factory.mktemp('stores') / 'carried'
    propagate_labels(CONFIG, out, overrides=WORLD, progress=False)
    return out


def test_the_stores_labels_follow_the_labeled_clips_in_each_batch(one_class, carried):
    cfg = _cfg()
    needs = DataNeeds(stores=(str(one_class), str(carried)), stores_ratio=2.0)
    loader = train_loader(cfg.data, needs, batch_size=2, seed=0, start_step=0, workers=0)
    frames = stores_as_clips(cfg.data, needs.stores, CAMVID_CLASSES)
    assert len(frames) == 12 + 12        # both stores' frames: six of each of two streets
    seen_one_class = 0
    for _, batch in zip(range(6), loader):
        labels = batch['labels'][:, 0]
        assert labels.shape[0] == 2 + 4
        assert set(labels[:2].unique().tolist()) - {IGNORE_INDEX, BICYCLIST}    # real truth
        for stored in labels[2:]:
            classes = set(stored.unique().tolist()) - {IGNORE_INDEX}
            seen_one_class += classes == {BICYCLIST}
    assert seen_one_class > 0


def test_a_carried_store_gives_the_labeled_streets_frames_with_their_carried_labels(carried):
    cfg = _cfg()
    frames = stores_as_clips(cfg.data, [carried], CAMVID_CLASSES)
    assert len(frames) == 12
    clip = frames[3]                                   # the first street's labeled frame
    assert clip.sequence == 'synthetic_0_00000' and clip.times == (3,)
    truth = labeled_sequences(cfg.data)[0].sequence.read(3)
    np.testing.assert_array_equal(clip.frames[0], truth[0])
    np.testing.assert_array_equal(clip.labels[0], truth[1])


@pytest.mark.slow
def test_a_teacher_trained_with_a_store_fits_the_stores_labels(tmp_path, one_class):
    # Four stored frames, all 'bicyclist', per labeled clip: the teacher learns to call most
    # of a held-out street bicyclist, where the truth has almost none.
    metrics = train_teacher_with_stores(CONFIG, tmp_path / 't', [one_class], steps=20,
                                        overrides=WORLD, ratio=4.0)
    assert metrics['stored_frames'] == 12
    record = json.loads((tmp_path / 't' / 'label_stores.json').read_text())
    assert record['ratio'] == 4.0 and record['stores'][0]['settings'] == {'one_class': 10}
    segmenter = Segmenter(tmp_path / 't' / 'model.safetensors')
    val = build_clips(_cfg().data, 'val', clip_length=1, gap=1)
    clip = val[0]
    share = (segmenter.segment(clip.frames[0]) == BICYCLIST).mean()
    assert (clip.labels[0] == BICYCLIST).mean() < 0.1
    assert share > 0.5


def test_bad_stores_stop_with_one_line(tmp_path, one_class):
    other = _one_class_store(tmp_path / 'other', _cfg(['data.synthetic.seed=5']).data)
    cases = [
        ([], {}, InputError, 'name at least one label store'),
        ([one_class], {'ratio': 0}, InputError, '--labels-ratio: expected'),
        ([tmp_path / 'none'], {}, StoreError, 'label store not found'),
        ([other], {}, StoreError, 'labels other video .synthetic.*seed=5'),
        ([one_class], {'overrides': WORLD + ['data.synthetic.unlabeled_clips=0']}, StoreError,
         'labels other video'),
    ]
    for stores, kwargs, error, message in cases:
        kwargs = {'overrides': WORLD, 'steps': 1, **kwargs}
        with pytest.raises(error, match=message) as caught:
            train_teacher_with_stores(CONFIG, tmp_path / 'run', stores, **kwargs)
        assert '\n' not in str(caught.value)
    # A run resumed with other stores, or another ratio, would mix two runs in one checkpoint.
    (tmp_path / 'run').mkdir()
    train_teacher_with_stores(CONFIG, tmp_path / 'run', [one_class], steps=0, overrides=WORLD)
    for stores, ratio in (([other], 1.0), ([one_class], 2.0)):
        with pytest.raises(InputError, match='trained from other label stores or another'):
            train_teacher_with_stores(CONFIG, tmp_path / 'run', stores, steps=0,
                                      overrides=WORLD + ['data.synthetic.seed=5'] * (
                                          stores == [other]), ratio=ratio)
    wrong = _one_class_store(tmp_path / 'wrong', _cfg().data, cls=0,
                             classes=CAMVID_CLASSES[::-1])
    with pytest.raises(StoreError, match='has 11 classes .bicyclist'):
        stores_as_clips(_cfg().data, [wrong], CAMVID_CLASSES)
    res = subprocess.run([sys.executable, '-m', 'stkd_ros.cli', 'train-teacher', '--config',
                          CONFIG, '--out', str(tmp_path / 'r'), '--labels-ratio', '2'],
                         capture_output=True, text=True)
    assert res.returncode == 2
    assert res.stderr.strip().splitlines() == [
        'stkd train-teacher: error: --labels-ratio: give the label stores with --labels STORE']


def _camvid_tree(root):
    """Write a CamVid tree of two 4-frame runs: 0001TP annotated at its frame 1, 0006R0 not."""
    rng = np.random.default_rng(0)
    for run in ('0001TP', '0006R0'):
        for t in range(4):
            write_rgb(root / 'sequences' / run / f'{run}_{t:06d}.png',
                      rng.integers(0, 255, (16, 32, 3), np.uint8))
    write_label(root / 'trainannot' / '0001TP_000001.png', np.zeros((16, 32), np.uint8))
    return root


def test_a_camvid_teachers_store_gives_the_runs_without_annotation_too(tmp_path):
    # The labeled and the unlabeled video of CamVid are the same runs under one name: a
    # store of `stkd label` holds every run, the carried truth only the annotated ones.
    root = _camvid_tree(tmp_path / 'camvid')
    data = load_config(CONFIG, ['data.dataset=camvid', f'data.root={root}',
                                'data.unlabeled_video=true']).data
    store = _one_class_store(tmp_path / 'labeled', data)
    assert sorted(LabelStore.open(store).sequences) == ['0001TP_000000', '0006R0_000000']
    frames = stores_as_clips(data, [store], CAMVID_CLASSES)
    assert sorted({clip.sequence for clip in frames}) == ['0001TP_000000', '0006R0_000000']
    assert len(frames) == 8


def test_a_store_of_sequences_the_video_lacks_stops_with_one_line(tmp_path):
    root = _camvid_tree(tmp_path / 'camvid')
    data = load_config(CONFIG, ['data.dataset=camvid', f'data.root={root}']).data
    # Carried truth said to hold both runs, where only 0001TP is annotated.
    store = _one_class_store(tmp_path / 'carried', data,
                             sequences=video_sequences(camvid_video(root, clip_length=1)),
                             teacher_sha256=CARRIED_TRUTH, source=labeled_video_identity(data),
                             teacher_precision=None)
    with pytest.raises(StoreError, match=r"holds 1 sequence\(s\) that this config's labeled "
                                         r'video lacks \(0006R0_000000, ...\)') as caught:
        stores_as_clips(data, [store], CAMVID_CLASSES)
    assert '\n' not in str(caught.value)


def test_a_run_resumes_only_as_it_was_started_with_or_without_stores(tmp_path, one_class):
    # Started with --labels: a plain train-teacher into it would go on from last.ckpt on the
    # labeled clips alone.
    with_stores = tmp_path / 'with'
    train_teacher_with_stores(CONFIG, with_stores, [one_class], steps=0, overrides=WORLD)
    with pytest.raises(InputError, match='trained with label stores .*label_stores.json') as \
            caught:
        train_teacher(CONFIG, with_stores, steps=0, overrides=WORLD)
    assert '\n' not in str(caught.value)
    # Started without: --labels would make a record and go on from its last.ckpt.
    plain = tmp_path / 'plain'
    train_teacher(CONFIG, plain, steps=1, overrides=WORLD)
    assert (plain / 'last.ckpt').is_file()
    with pytest.raises(InputError, match='trained without label stores') as caught:
        train_teacher_with_stores(CONFIG, plain, [one_class], steps=0, overrides=WORLD)
    assert '\n' not in str(caught.value) and not (plain / 'label_stores.json').exists()


def test_the_record_holds_each_stores_precision_and_a_relabeled_store_stops(tmp_path):
    data = _cfg().data
    fp32 = _one_class_store(tmp_path / 'fp32', data)
    train_teacher_with_stores(CONFIG, tmp_path / 'run', [fp32], steps=0, overrides=WORLD)
    record = json.loads((tmp_path / 'run' / 'label_stores.json').read_text())
    assert record['stores'][0]['teacher_precision'] == 'fp32'
    bf16 = _one_class_store(tmp_path / 'bf16', data, teacher_precision='bf16')
    with pytest.raises(InputError, match='trained from other label stores'):
        train_teacher_with_stores(CONFIG, tmp_path / 'run', [bf16], steps=0, overrides=WORLD)
    # A record written before the precision was kept still resumes with its stores.
    del record['stores'][0]['teacher_precision']
    (tmp_path / 'run' / 'label_stores.json').write_text(json.dumps(record))
    train_teacher_with_stores(CONFIG, tmp_path / 'run', [fp32], steps=0, overrides=WORLD)


def test_a_carried_store_is_of_the_annotation_it_was_carried_from(tmp_path):
    # Another annotated frame changes where chains start: the store made before must not
    # resume, nor teach, as if it were of this annotation.
    root = _camvid_tree(tmp_path / 'camvid')
    sets = ['data.dataset=camvid', f'data.root={root}']
    store = tmp_path / 'carried'
    propagate_labels(CONFIG, store, overrides=sets, progress=False)
    data = load_config(CONFIG, sets).data
    assert len(stores_as_clips(data, [store], CAMVID_CLASSES)) == 4
    write_label(root / 'trainannot' / '0001TP_000003.png', np.zeros((16, 32), np.uint8))
    with pytest.raises(StoreError, match='labels other video') as caught:
        stores_as_clips(data, [store], CAMVID_CLASSES)
    assert '\n' not in str(caught.value)
    with pytest.raises(StoreError):
        propagate_labels(CONFIG, store, overrides=sets, progress=False)
