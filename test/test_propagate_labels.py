"""Labels carried along the flow from a labeled frame to its sequence (label propagation)."""

from cli_helpers import CONFIG
import numpy as np
import pytest
from stkd_ros.config import load_config
from stkd_ros.data.classes import IGNORE_INDEX
from stkd_ros.errors import InputError
from stkd_ros.labeling.labeled_video import labeled_sequences
from stkd_ros.labeling.propagation import carry, carry_sequence, CarryFlow, chains
from stkd_ros.labeling.sources import Sequence

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


def test_a_resumed_chain_carries_on_from_the_frames_written_before():
    world, sequence = _slide()
    flow = CarryFlow('dis', preset='ultrafast')
    whole = _carried(sequence, 3, flow)
    todo = {0, 6, 7}
    resumed = _carried(sequence, 3, flow, todo=todo, done=lambda t: whole[t][0])
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
