"""Labels carried along the flow from a labeled frame to its sequence (label propagation)."""

import filecmp
import json
from pathlib import Path
import re
import shutil
import subprocess
import sys

from cli_helpers import CONFIG, kill_after_frames
import numpy as np
import pytest
from stkd_ros.commands.propagate import propagate_labels
from stkd_ros.config import load_config
from stkd_ros.data.classes import IGNORE_INDEX
from stkd_ros.data.image_io import write_label, write_rgb
from stkd_ros.errors import InputError
from stkd_ros.labeling.identity import labeled_video_identity
from stkd_ros.labeling.labeled_video import labeled_sequences
from stkd_ros.labeling.propagation import carry, carry_sequence, CarryFlow, chains
from stkd_ros.labeling.sources import Sequence
from stkd_ros.labeling.store import first_missing, LabelStore, StoreError

#: The sliding world's occluder: its class, colour (no background pixel is near it), speed.
OCCLUDER, MAGENTA, SPEED = 4, (255, 0, 255), -2


class SlidingWorld:
    """
    A tiny generated video with exact, whole-pixel flow, and an occluder.

    The background (random colours below 200, four classes in blocks) moves one pixel right
    per frame; a magenta square of class 4 moves two pixels left per frame in front of it.
    A source as ``labeling.sources`` reads them, with the exact flow the synthetic world has.
    """

    def __init__(self, frames=8, height=16, width=40, seed=0):
        rng = np.random.default_rng(seed)
        self.frames, self.height, self.width = frames, height, width
        self.texture = rng.integers(0, 200, (height, width + frames, 3), dtype=np.uint8)
        blocks = rng.integers(0, 4, (height // 4 + 1, (width + frames) // 4 + 1))
        self.classes = np.kron(blocks, np.ones((4, 4), int))[:height, :width + frames]
        self.x0 = width - 10

    def list_sequences(self):
        return [('slide', self.frames)]

    def sequence_size(self, name):
        return self.height, self.width

    def _square(self, t):
        """Bool (H, W): the occluder's pixels in frame t."""
        x = np.arange(self.width)
        left = self.x0 + SPEED * t
        inside = (x >= left) & (x < left + 6)
        rows = (np.arange(self.height) >= 4) & (np.arange(self.height) < 12)
        return rows[:, None] & inside[None, :]

    def sequence_frame(self, name, t):
        cols = np.arange(self.width) - t + self.frames      # texture column each pixel shows
        frame = self.texture[:, cols].copy()
        truth = self.classes[:, cols].astype(np.uint8)
        square = self._square(t)
        frame[square], truth[square] = MAGENTA, OCCLUDER
        return frame, truth

    def sequence_truth(self, name, t):
        return self.sequence_frame(name, t)[1]

    def exact_flow(self, name, t, s):
        flow = np.zeros((self.height, self.width, 2), np.float32)
        flow[..., 0] = s - t
        flow[self._square(t), 0] = SPEED * (s - t)
        return flow


def _slide(frames=8):
    world = SlidingWorld(frames)
    return world, Sequence(world, 'slide', frames)


def _carried(sequence, k, flow, **kwargs):
    out = list(carry_sequence(sequence, {k: sequence.truth(k)}, flow, **kwargs))
    assert len({t for t, _, _ in out}) == len(out)          # each frame once
    return {t: (labels, d) for t, labels, d in out}


def test_truth_carried_along_exact_flow_equals_the_truth_on_the_visible_pixels():
    world, sequence = _slide()
    carried = _carried(sequence, 3, CarryFlow('ground_truth'))
    assert sorted(carried) == list(range(8))
    for t, (labels, distance) in carried.items():
        assert distance == abs(t - 3)
        kept = labels != IGNORE_INDEX
        np.testing.assert_array_equal(labels[kept], sequence.truth(t)[kept])
        assert kept.mean() > (0.99 if t == 3 else 0.5)
    # New background coming in at the left edge has no past: unlabeled.
    assert (carried[5][0][:, :2] == IGNORE_INDEX).all()
    assert (carried[5][0][:, 2:4] != IGNORE_INDEX).any()


def test_an_occluded_pixel_stays_unlabeled_and_once_lost_stays_lost():
    world, sequence = _slide()
    carried = _carried(sequence, 3, CarryFlow('ground_truth'))
    # Texture columns the square hides in frame 3 (the labeled one), away from the edges:
    # they reappear behind it and are seen in every later frame, yet carry nothing.
    hidden = world._square(3)
    cols = np.nonzero(hidden.any(0))[0]
    for t in range(4, 8):
        rows = slice(4, 12)
        labels = carried[t][0][rows, cols + (t - 3)]       # the same texture points
        shown = ~world._square(t)[rows, cols + (t - 3)]
        assert shown.any()
        assert (labels[shown] == IGNORE_INDEX).all()
    # With the check switched off in effect (a threshold no colour difference exceeds) the
    # same pixels would carry the square's class: the check is what drops them.
    loose = _carried(sequence, 3, CarryFlow('ground_truth', threshold=1.01))
    assert (loose[4][0][4:12, cols + 1] == OCCLUDER).any()


class DriftingWorld:
    """A smooth video drifting 0.4 pixel right per frame: flow below a pixel at every link."""

    frames, height, width, speed = 8, 8, 48, 0.4

    def list_sequences(self):
        return [('drift', self.frames)]

    def sequence_size(self, name):
        return self.height, self.width

    def sequence_frame(self, name, t):
        u = np.arange(self.width) - self.speed * t           # the content each pixel shows
        colour = [100 + 80 * np.sin(2 * np.pi * u / 23 + phase) for phase in (0, 2, 4)]
        frame = np.broadcast_to(np.stack(colour, -1), (self.height, self.width, 3))
        truth = (np.floor(u / 4) % 3).astype(np.uint8)
        return np.round(frame).astype(np.uint8), np.broadcast_to(truth, frame.shape[:2]).copy()

    def sequence_truth(self, name, t):
        return self.sequence_frame(name, t)[1]

    def exact_flow(self, name, t, s):
        flow = np.zeros((self.height, self.width, 2), np.float32)
        flow[..., 0] = self.speed * (s - t)
        return flow


def test_the_flows_are_chained_so_motion_below_a_pixel_adds_up():
    # Labels carried link by link, nearest pixel, would never move here (0.4 pixel rounds to
    # nothing): five frames on, where the content has moved two whole pixels, half of them
    # would be wrong. Chained, the flow to the labeled frame is those two pixels.
    sequence = Sequence(DriftingWorld(), 'drift', 8)
    labels = _carried(sequence, 0, CarryFlow('ground_truth'))[5][0]
    kept = labels != IGNORE_INDEX
    assert kept[:, 2:].all()
    np.testing.assert_array_equal(labels[kept], sequence.truth(5)[kept])


def test_frames_before_the_labeled_one_are_carried_backward():
    world, sequence = _slide()
    carried = _carried(sequence, 6, CarryFlow('ground_truth'))
    for t in range(6):
        kept = carried[t][0] != IGNORE_INDEX
        assert kept.mean() > 0.5
        np.testing.assert_array_equal(carried[t][0][kept], sequence.truth(t)[kept])


def test_each_frame_is_carried_from_its_nearest_labeled_frame():
    assert chains(10, [2, 7]) == [[2, 3, 4], [2, 1, 0], [7, 8, 9], [7, 6, 5]]
    assert chains(7, [2, 4]) == [[2, 3], [2, 1, 0], [4, 5, 6], [4]]      # 3 ties: the earlier
    world, sequence = _slide(10)
    both = {t: labels for t, labels, _ in carry_sequence(
        sequence, {2: sequence.truth(2), 7: sequence.truth(7)}, CarryFlow('ground_truth'))}
    np.testing.assert_array_equal(both[6], _carried(sequence, 7, CarryFlow('ground_truth'))[6][0])
    np.testing.assert_array_equal(both[4], _carried(sequence, 2, CarryFlow('ground_truth'))[4][0])


def test_frames_asked_for_alone_are_those_of_the_whole_chain():
    # 32x64: on frames as small as 16x40, OpenCV's DIS gives another flow at its first call.
    sequence = Sequence(SlidingWorld(8, height=32, width=64), 'slide', 8)
    flow = CarryFlow('dis', preset='ultrafast')
    whole = _carried(sequence, 3, flow)
    todo = {0, 6, 7}
    resumed = _carried(sequence, 3, flow, todo=todo)
    assert set(resumed) == todo
    for t in todo:
        np.testing.assert_array_equal(resumed[t][0], whole[t][0])


def test_estimated_flow_carries_the_labels_right_where_the_check_keeps_them():
    world = SlidingWorld(8, height=32, width=64)
    sequence = Sequence(world, 'slide', 8)
    for check, right in (('photometric', 0.99), ('both', 0.99), ('forward-backward', 0.95)):
        labels = _carried(sequence, 3, CarryFlow('dis', check=check))[4][0]
        kept = labels != IGNORE_INDEX
        assert kept.mean() > 0.8
        assert (labels[kept] == sequence.truth(4)[kept]).mean() > right


def test_truth_carried_along_the_worlds_exact_flow_matches_its_truth():
    # The rendered world: exact flow is sub-pixel, so nearest sampling can take a neighbour's
    # class on a boundary; measured 98% right one frame away.
    cfg = load_config(CONFIG, ['data.synthetic.height=48', 'data.synthetic.width=96',
                               'data.synthetic.frames=6', 'data.synthetic.train_clips=1',
                               'data.synthetic.label_every=6'])
    (street,) = labeled_sequences(cfg.data)
    assert street.labeled == (3,)
    carried = {t: labels for t, labels, _ in carry_sequence(
        street.sequence, street.labels(), CarryFlow('ground_truth'), todo=[2, 3, 4])}
    np.testing.assert_array_equal(carried[3], street.sequence.truth(3))
    for t in (2, 4):
        truth = street.sequence.truth(t)
        kept = (carried[t] != IGNORE_INDEX) & (truth != IGNORE_INDEX)
        assert kept.mean() > 0.7
        assert (carried[t][kept] == truth[kept]).mean() > 0.95


def test_bad_input_stops_with_one_line():
    world, sequence = _slide()
    cases = [
        (lambda: list(carry_sequence(sequence, {3: np.zeros((8, 40), np.uint8)},
                                     CarryFlow('ground_truth'))),
         'the label map of frame 3 is 8x40, its frames 16x40'),
        (lambda: carry(np.zeros((4, 4), np.uint8), np.zeros((4, 5, 2), np.float32),
                       np.ones((4, 4), bool)), 'differ in size'),
        (lambda: CarryFlow('dis', check='none'), "unknown occlusion check 'none'"),
        (lambda: CarryFlow('dis', threshold=0), 'photometric threshold'),
        (lambda: CarryFlow('sift'), "unknown flow method 'sift'"),
        (lambda: list(carry_sequence(Sequence(_NoExactFlow(), 'slide', 8),
                                     {3: sequence.truth(3)}, CarryFlow('ground_truth'))),
         'exact flow exists in the synthetic world only'),
        (lambda: list(carry_sequence(sequence, {}, CarryFlow('ground_truth'))),
         'needs a labeled frame'),
    ]
    for call, message in cases:
        with pytest.raises(InputError, match=message) as caught:
            call()
        assert '\n' not in str(caught.value)


class _NoExactFlow(SlidingWorld):
    """A source without exact flow, as recorded video is."""

    exact_flow = None


# --- stkd propagate-labels: the carried labels as a label store ------------------------------

#: Two labeled streets of six 32x64 frames, labeled at frame 3 (label_every 6).
WORLD = ['data.synthetic.height=32', 'data.synthetic.width=64', 'data.synthetic.frames=6',
         'data.synthetic.train_clips=2', 'data.synthetic.label_every=6']
STREETS = ['synthetic_0_00000', 'synthetic_0_00001']


@pytest.fixture(scope='module')
def store(tmp_path_factory):
    out = tmp_path_factory.mktemp('carried') / 'store'
    return out, propagate_labels(CONFIG, out, overrides=WORLD, progress=False)


def _world():
    return {s.name: s for s in labeled_sequences(load_config(CONFIG, WORLD).data)}


def test_the_carried_labels_are_a_label_store(store):
    out, summary = store
    assert summary['frames_carried'] == 12 and summary['missing'] == 0
    assert summary['oracle'] is False
    manifest = json.loads((out / 'manifest.json').read_text())
    assert manifest['teacher_sha256'] == 'carried_truth' and manifest['oracle'] is False
    assert manifest['teacher_precision'] is None                   # no teacher's forward
    assert manifest['source'] == labeled_video_identity(load_config(CONFIG, WORLD).data)
    assert 'split=train' in manifest['source'] and 'label_every=6' in manifest['source']
    assert manifest['settings'] == {'labels': 'carried along the flow', 'flow': 'dis',
                                    'flow_args': {}, 'check': 'photometric',
                                    'threshold': 0.08}
    assert manifest['sequences'] == {name: {'frames': 6, 'size': [32, 64]} for name in STREETS}
    labels = LabelStore.open(out)
    world = _world()
    for name in STREETS:
        street = world[name]
        expected = {t: lab for t, lab, _ in carry_sequence(
            street.sequence, street.labels(), CarryFlow('dis'))}
        for t in range(6):
            classes, confidence = labels.read(name, t)
            np.testing.assert_array_equal(classes, expected[t])
            np.testing.assert_array_equal(confidence, np.where(classes == 255, 0, 255))
        np.testing.assert_array_equal(labels.read(name, 3)[0], street.sequence.truth(3))


def test_the_quality_report_scores_the_kept_pixels_by_distance(store):
    out, summary = store
    quality = json.loads((out / 'quality.json').read_text())
    assert quality == json.loads(json.dumps(summary['quality']))
    rows = {row['distance']: row for row in quality['by_distance']}
    assert sorted(rows) == [0, 1, 2, 3] and rows[0]['miou'] == 1.0 and rows[0]['kept'] == 1.0
    assert quality['frames'] == 10 and rows[1]['frames'] == 4 and rows[3]['frames'] == 2
    # Independently, two frames away: frames 1 and 5 of each street.
    labels, world = LabelStore.open(out), _world()
    kept = right = scored = 0
    for name in STREETS:
        for t in (1, 5):
            carried, truth = labels.read(name, t)[0], world[name].sequence.truth(t)
            valid = truth != IGNORE_INDEX
            keep = valid & (carried != IGNORE_INDEX)
            scored, kept = scored + valid.sum(), kept + keep.sum()
            right += (keep & (carried == truth)).sum()
    assert rows[2]['kept'] == pytest.approx(kept / scored) and 0.5 < rows[2]['kept'] < 1
    assert rows[2]['pixel_accuracy'] == pytest.approx(right / kept)
    assert 0 < quality['miou'] < 1 and quality['oracle'] is False


def test_a_rerun_carries_only_the_missing_frames_and_gives_the_same_files(tmp_path, store):
    done, _ = store
    out = tmp_path / 'resumed'
    shutil.copytree(done, out)
    street = STREETS[0]
    (out / 'labels' / street / '000005.png').unlink()          # killed between its two files
    for kind in ('labels', 'confidence'):
        (out / kind / street / '000001.png').unlink()
        (out / kind / STREETS[1] / '000003.png').unlink()       # the labeled frame
    (out / 'labels' / street / '000001.12345.tmp.png').write_bytes(b'half')
    kept = {p: p.stat().st_mtime_ns for p in (out / 'labels').rglob('*.png')}
    summary = propagate_labels(CONFIG, out, overrides=WORLD, progress=False)
    assert summary['frames_carried'] == 3
    assert _files(out) == _files(done)
    _, mismatch, errors = filecmp.cmpfiles(done, out, _files(done), shallow=False)
    assert not mismatch and not errors
    assert all(p.stat().st_mtime_ns == stamp for p, stamp in kept.items() if p.exists())
    assert not list(out.rglob('*.tmp.png'))
    assert propagate_labels(CONFIG, out, overrides=WORLD, progress=False)['frames_carried'] == 0


def test_two_shards_fill_one_store_as_one_run_does(tmp_path, store):
    done, _ = store
    out = tmp_path / 'sharded'
    first = propagate_labels(CONFIG, out, overrides=WORLD, shard='1/2', progress=False)
    assert first['frames_carried'] == 6 and first['missing'] == 6 and first['quality'] is None
    second = propagate_labels(CONFIG, out, overrides=WORLD, shard='0/2', progress=False)
    assert second['missing'] == 0 and second['quality'] is not None
    _, mismatch, errors = filecmp.cmpfiles(done, out, _files(done), shallow=False)
    assert not mismatch and not errors


def test_exact_flow_makes_a_named_oracle(tmp_path):
    summary = propagate_labels(CONFIG, tmp_path / 's', flow='ground_truth', overrides=WORLD,
                               progress=False)
    assert summary['oracle'] and summary['quality']['oracle']
    assert LabelStore.open(tmp_path / 's').oracle
    assert summary['quality']['by_distance'][1]['pixel_accuracy'] > 0.95


def _files(root):
    return sorted(str(p.relative_to(root)) for kind in ('labels', 'confidence')
                  for p in (Path(root) / kind).rglob('*.png'))


#: Cityscapes labelIds of trainIds 0..4 (road, sidewalk, building, wall, fence).
LABEL_IDS = np.array([7, 8, 11, 12, 13], np.uint8)


def _cityscapes_snippet(root):
    """Write a 6-frame snippet of the sliding world in Cityscapes' layout, labeled at its 3rd."""
    world = SlidingWorld(6, height=32, width=64)
    for t in range(6):
        frame, truth = world.sequence_frame('slide', t)
        write_rgb(root / 'leftImg8bit_sequence' / 'train' / 'bonn'
                  / f'bonn_000003_{17 + t:06d}_leftImg8bit.png', frame)
    write_label(root / 'gtFine' / 'train' / 'bonn' / 'bonn_000003_000019_gtFine_labelIds.png',
                LABEL_IDS[world.sequence_truth('slide', 2)])
    return world


def _dataset_store(out, sets, sequence: str, source: str, frames: int) -> LabelStore:
    """
    Carry a dataset's one labeled sequence into ``out``; check what the store says.

    ``source``: the video's name up to its digest of the annotated frames.
    """
    summary = propagate_labels(CONFIG, out, overrides=sets, progress=False)
    assert summary['frames_carried'] == frames
    assert summary['quality'] is None              # no truth beyond the annotated frames
    store = LabelStore.open(out)
    assert list(store.sequences) == [sequence]
    assert re.fullmatch(re.escape(source) + r',labeled=[0-9a-f]{12}\)', store.source)
    return store


def test_cityscapes_snippets_are_carried_from_their_fine_labels(tmp_path):
    world = _cityscapes_snippet(tmp_path / 'cs')
    sets = ['data.dataset=cityscapes', f'data.root={tmp_path / "cs"}']
    store = _dataset_store(tmp_path / 'store', sets, 'bonn_000003_000017',
                           'cityscapes_video(root=cs,frames=6', 6)
    assert len(store.classes) == 19
    np.testing.assert_array_equal(store.read('bonn_000003_000017', 2)[0],
                                  world.sequence_truth('slide', 2))
    for t in (0, 4):
        carried, truth = store.read('bonn_000003_000017', t)[0], world.sequence_truth('slide', t)
        kept = carried != IGNORE_INDEX
        assert kept.mean() > 0.6 and (carried[kept] == truth[kept]).mean() > 0.95
    with pytest.raises(InputError, match='cityscapes video has none'):
        propagate_labels(CONFIG, tmp_path / 'gt', flow='ground_truth', overrides=sets)


def test_camvid_runs_are_carried_from_each_annotated_frame(tmp_path):
    # A 1 Hz annotation of a 30 Hz drive, here two annotated frames of a 10-frame run.
    world = SlidingWorld(10, height=32, width=64)
    root = tmp_path / 'camvid'
    for t in range(10):
        write_rgb(root / 'sequences' / '0001TP' / f'0001TP_{t:06d}.png',
                  world.sequence_frame('slide', t)[0])
    for t in (2, 7):
        write_label(root / 'trainannot' / f'0001TP_{t:06d}.png', world.sequence_truth('slide', t))
    sets = ['data.dataset=camvid', f'data.root={root}']
    store = _dataset_store(tmp_path / 'store', sets, '0001TP_000000',
                           'camvid_video(root=camvid,frames=10', 10)
    for t in range(10):
        carried, truth = store.read('0001TP_000000', t)[0], world.sequence_truth('slide', t)
        kept = carried != IGNORE_INDEX
        assert kept.mean() > (0.99 if t in (2, 7) else 0.6)
        assert (carried[kept] == truth[kept]).mean() > 0.95
    # Frames 3 and 4 come from frame 2, frames 5 and 6 from frame 7 (the nearer).
    sequence = Sequence(world, 'slide', 10)
    for k, frames in ((2, (3, 4)), (7, (5, 6))):
        alone = _carried(sequence, k, CarryFlow('dis'))
        for t in frames:
            np.testing.assert_array_equal(store.read('0001TP_000000', t)[0], alone[t][0])


def test_bad_input_to_the_command_stops_with_one_line(tmp_path, store):
    done, _ = store
    (tmp_path / 'other').mkdir()
    (tmp_path / 'other' / 'notes.txt').write_text('mine')
    cases = [
        ({'overrides': WORLD + ['data.synthetic.label_every=1']}, InputError,
         'label_every is 1: every frame'),
        ({'out': done, 'check': 'both'}, StoreError,
         'another label settings .check: photometric there, both here'),
        ({'out': done, 'overrides': WORLD + ['data.synthetic.seed=5']}, StoreError,
         'another video source'),
        ({'out': tmp_path / 'other'}, StoreError, 'is not a label store'),
        ({'flow_args': ['preset']}, InputError, '--flow-arg: expected KEY=VALUE'),
        ({'flow_args': ['speed=3']}, InputError, '--flow-arg: dis flow takes no such setting'),
        ({'flow_args': ['preset=slow']}, InputError, "unknown DIS preset 'slow'"),
        ({'shard': '2/2'}, InputError, 'expected I/N with 0 <= I < N'),
        ({'overrides': ['data.dataset=cityscapes', f'data.root={tmp_path / "none"}']},
         FileNotFoundError, 'does not exist'),
    ]
    for change, error, message in cases:
        kwargs = {'out': tmp_path / 'new', 'progress': False, 'overrides': WORLD}
        kwargs.update(change)
        with pytest.raises(error, match=message) as caught:
            propagate_labels(CONFIG, kwargs.pop('out'), **kwargs)
        assert '\n' not in str(caught.value)


def test_the_command_prints_its_report_and_errors_in_one_line(tmp_path):
    args = [sys.executable, '-m', 'stkd_ros.cli', 'propagate-labels', '--config', CONFIG]
    for item in WORLD:
        args += ['--set', item]
    res = subprocess.run(args + ['--out', str(tmp_path / 's'), '--flow-arg', 'preset=fast'],
                         capture_output=True, text=True, check=True)
    lines = res.stdout.splitlines()
    assert lines[0].startswith(f'propagate-labels: 12 frames carried into {tmp_path / "s"}')
    assert lines[1].startswith('label quality on 10 carried frames with ground truth: mIoU')
    assert lines[2].split() == ['frames', 'away', 'frames', 'mIoU', 'kept', 'pole',
                                'pedestrian']
    assert LabelStore.open(tmp_path / 's').manifest['settings']['flow_args'] == {
        'preset': 'fast'}
    res = subprocess.run(args + ['--out', str(tmp_path / 'e'), '--set',
                                 'data.synthetic.label_every=1'], capture_output=True, text=True)
    assert res.returncode == 2
    assert res.stderr.strip().splitlines() == [
        'stkd propagate-labels: error: data.synthetic.label_every is 1: every frame of the '
        'labeled streets has its label, there is nothing to carry (set it to e.g. 30)']


@pytest.mark.slow
def test_a_killed_run_resumes_where_it_stopped(tmp_path):
    world = [w.replace('frames=6', 'frames=30').replace('label_every=6', 'label_every=30')
             .replace('train_clips=2', 'train_clips=4') for w in WORLD]
    world += [f'data.synthetic.render_cache={tmp_path / "render"}']
    args = [sys.executable, '-m', 'stkd_ros.cli', 'propagate-labels', '--config', CONFIG]
    for item in world:
        args += ['--set', item]
    killed = tmp_path / 'killed'
    kill_after_frames(args, killed)
    assert first_missing(killed, json.loads((killed / 'manifest.json').read_text()))
    subprocess.run(args + ['--out', str(killed)], check=True, capture_output=True)
    whole = tmp_path / 'whole'
    subprocess.run(args + ['--out', str(whole)], check=True, capture_output=True)
    assert _files(killed) == _files(whole) and len(_files(whole)) == 2 * 120
    _, mismatch, errors = filecmp.cmpfiles(whole, killed, _files(whole), shallow=False)
    assert not mismatch and not errors
    assert json.loads((killed / 'quality.json').read_text()) == json.loads(
        (whole / 'quality.json').read_text())


def test_an_incomplete_carried_store_names_the_command_that_finishes_it(tmp_path, store):
    done, _ = store
    shutil.copytree(done, tmp_path / 's')
    (tmp_path / 's' / 'labels' / STREETS[1] / '000004.png').unlink()
    with pytest.raises(StoreError, match='run `stkd propagate-labels` again with the same '
                                         'arguments, on every shard'):
        LabelStore.open(tmp_path / 's')
