"""`stkd label`'s teacher takes the frames of a sequence in batches (``label.batch``)."""

import numpy as np
import pytest
from stkd_ros.config import ConfigError, load_config
from stkd_ros.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from stkd_ros.flow import build_flow
from stkd_ros.labeling.fusion import EstimatedLinks
from stkd_ros.labeling.labeler import hard_labels, label_sequence
from stkd_ros.labeling.passes import TeacherPasses
from stkd_ros.labeling.sources import video_sequences
from stkd_ros.models import build_model
import torch

META = {'input_size': [64, 128], 'mean': list(IMAGENET_MEAN), 'std': list(IMAGENET_STD)}


class NoisyVideo:
    """One sequence of ``frames`` different pictures (a source as labeling.sources reads)."""

    def __init__(self, frames=7, h=64, w=128):
        rng = np.random.default_rng(3)
        self.pictures = rng.integers(0, 256, (frames, h, w, 3), np.uint8)

    def list_sequences(self):
        return [('noisy', len(self.pictures))]

    def sequence_size(self, name):
        return self.pictures.shape[1:3]

    def sequence_frame(self, name, t):
        return self.pictures[t].copy(), None


@pytest.fixture(scope='module')
def teacher():
    torch.manual_seed(0)
    return build_model('teacher', 11, size='tiny').eval()


@pytest.fixture(scope='module')
def passes(teacher):
    return TeacherPasses(teacher, META, scales=[1.0, 1.5], flip=True, precision='fp32')


def _probs(passes, todo, batch, radius=0):
    (sequence,) = video_sequences(NoisyVideo())
    links = EstimatedLinks(build_flow('dis')) if radius else None
    return dict(label_sequence(sequence, passes, todo, radius=radius, links=links,
                               batch=batch))


def test_one_frame_at_a_time_is_the_frame_alone(passes):
    video = NoisyVideo()
    for t, probs in _probs(passes, range(7), batch=1).items():
        assert torch.equal(probs, passes.probabilities(video.pictures[t]))


@pytest.mark.parametrize('radius', [0, 1])
def test_batches_keep_the_labels_of_one_frame_at_a_time(passes, radius):
    """In their last bits only: the library's convolution kernels change with the batch."""
    alone = _probs(passes, range(7), batch=1, radius=radius)
    batched = _probs(passes, range(7), batch=4, radius=radius)
    assert batched.keys() == alone.keys()
    for t in alone:
        torch.testing.assert_close(batched[t], alone[t], atol=1e-5, rtol=0)
        (classes, confidence), (classes1, confidence1) = (hard_labels(batched[t]),
                                                          hard_labels(alone[t]))
        assert (classes == classes1).mean() >= 0.999
        assert np.abs(confidence.astype(int) - confidence1).max() <= 1


def test_a_resumed_run_computes_each_frame_as_an_unbroken_one_does(teacher):
    """Every call takes ``batch`` frames, so a frame's bits do not depend on where a run began."""
    passes = TeacherPasses(teacher, META, precision='fp32')   # no flip: one image a frame
    unbroken = _probs(passes, range(5), batch=4)      # frames 0-3, then 4 (padded to four)
    resumed = _probs(passes, range(2, 5), batch=4)    # frames 2-4 (padded to four)
    for t in resumed:
        assert torch.equal(resumed[t], unbroken[t]), t


def test_the_batch_is_a_count_of_frames():
    assert load_config(None).label.batch >= 1
    with pytest.raises(ConfigError, match=r'^config: label.batch: expected 1 or more frames, '
                                          r'got 0$'):
        load_config(None, ['label.batch=0'])
