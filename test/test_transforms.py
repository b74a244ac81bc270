"""Joint clip transforms keep frames, labels and flow aligned."""

import random

import numpy as np
from stkd_ros.data.clip import Clip
from stkd_ros.data.transforms import (
    RandomCrop, RandomHorizontalFlip, RandomScale, ToTensor, train_transforms)
import torch


def _clip(h=20, w=30):
    frames = np.stack([np.tile(np.arange(w, dtype=np.uint8), (h, 1))[..., None].repeat(3, 2)] * 2)
    labels = np.stack([np.tile((np.arange(w) // 10).astype(np.uint8), (h, 1))] * 2)
    flows = np.zeros((1, h, w, 2), np.float32)
    flows[..., 0], flows[..., 1] = 2.0, -1.0
    return Clip(frames, labels, flows, 'c')


def test_flip_mirrors_everything_and_negates_flow_x():
    clip = RandomHorizontalFlip(p=1.0)(_clip())
    assert clip.frames[0, 0, 0, 0] == 29 and clip.labels[0, 0, 0] == 2
    np.testing.assert_allclose(clip.flows[..., 0], -2.0)
    np.testing.assert_allclose(clip.flows[..., 1], -1.0)


def test_scale_rescales_flow_vectors():
    random.seed(0)
    clip = RandomScale(2.0, 2.0)(_clip())
    assert clip.frames.shape == (2, 40, 60, 3) and clip.labels.shape == (2, 40, 60)
    np.testing.assert_allclose(clip.flows[..., 0], 4.0, atol=1e-5)
    np.testing.assert_allclose(clip.flows[..., 1], -2.0, atol=1e-5)
    assert set(np.unique(clip.labels)) == {0, 1, 2}   # nearest: no new label values


def test_crop_takes_the_same_window_from_every_frame_and_pads_labels_with_ignore():
    random.seed(1)
    clip = _clip()
    clip.frames[1] = clip.frames[0]
    out = RandomCrop((10, 10))(clip)
    np.testing.assert_array_equal(out.frames[0], out.frames[1])
    assert (out.frames[0, 0, :, 0] // 10 == out.labels[0, 0]).all()
    padded = RandomCrop((25, 35))(_clip())
    assert padded.labels.shape == (2, 25, 35) and (padded.labels == 255).any()


def test_padding_is_marked_invalid_through_crop_flip_and_tensors():
    random.seed(3)
    clip = RandomCrop((25, 35))(_clip())
    # The 20x30 image sits at the top left of the padded window: the rest is padding.
    assert clip.valid.shape == (25, 35)
    assert clip.valid[:20, :30].all()
    assert not clip.valid[20:].any() and not clip.valid[:, 30:].any()
    flipped = RandomHorizontalFlip(p=1.0)(clip)
    np.testing.assert_array_equal(flipped.valid, clip.valid[:, ::-1])
    out = train_transforms(crop_size=(25, 35), scale_range=(1.0, 1.0))(_clip())
    assert out['valid'].dtype == torch.bool and out['valid'].shape == (25, 35)
    assert out['valid'].sum() == 20 * 30
    assert ToTensor()(_clip())['valid'].all()   # a clip without padding is all image


def test_presets_return_normalized_tensors():
    random.seed(2)
    out = train_transforms(crop_size=(16, 16), scale_range=(0.8, 1.2))(_clip())
    assert out['frames'].shape == (2, 3, 16, 16) and out['frames'].dtype == torch.float32
    assert out['labels'].dtype == torch.int64 and out['flows'].shape == (1, 2, 16, 16)


def test_a_label_stores_classes_and_confidence_move_with_the_frames():
    random.seed(4)
    clip = _clip()
    clip.targets = clip.labels.copy()
    clip.confidence = (clip.frames[..., 0] * 8).astype(np.uint8)   # 8 x the column index
    out = train_transforms(crop_size=(25, 28), scale_range=(1.3, 1.3))(clip)
    image = out['valid']
    np.testing.assert_array_equal(out['targets'][:, image], out['labels'][:, image])
    assert (out['targets'][:, ~image] == 255).all() and (out['confidence'][:, ~image] == 0).all()
    # Confidence follows the frame: nearest resize of 8 x column, like the pixel it labels.
    column = out['frames'][0, 0] * 0.229 + 0.485          # back to x / 255
    np.testing.assert_allclose(out['confidence'][0][image], (column[image] * 8).clamp(max=1),
                               atol=8 / 255 + 1e-3)
    assert out['targets'].dtype == torch.int64 and out['confidence'].max() <= 1.0


def test_rescaled_labels_stay_on_the_pixels_of_their_class():
    # Stripes 1 to 6 pixels wide, dark on even classes and bright on odd ones: wherever the
    # bilinearly rescaled frame is clearly dark or bright, the label must say so.
    widths = np.tile(np.arange(1, 7), 4)
    labels_row = np.repeat(np.arange(len(widths)) % 11, widths).astype(np.uint8)
    labels = np.tile(labels_row, (12, 1))
    frame = ((labels % 2) * 255).astype(np.uint8)[..., None].repeat(3, 2)
    for scale in (0.75, 0.9, 1.1, 1.25, 1.4):
        clip = RandomScale(scale, scale)(Clip(frame[None], labels[None], None, 'c'))
        gray, odd = clip.frames[0, ..., 0], clip.labels[0] % 2 == 1
        assert not (odd & (gray < 40)).any(), scale
        assert not (~odd & (gray > 215)).any(), scale
