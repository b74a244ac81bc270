"""Cityscapes loader on a tiny tree in the official layout."""

import numpy as np
import pytest
from stkd_ros.data.cityscapes import CITYSCAPES_CLASSES, cityscapes_video, CityscapesClips
from stkd_ros.data.image_io import write_label, write_rgb


@pytest.fixture
def cityscapes(tmp_path):
    city = 'aachen'
    stem = f'{city}_000000_000019'
    write_rgb(tmp_path / 'leftImg8bit' / 'val' / city / f'{stem}_leftImg8bit.png',
              np.full((4, 6, 3), 10, np.uint8))
    # labelIds: 7 road -> trainId 0, 26 car -> 13, 0 unlabeled -> 255, 24 person -> 11
    ids = np.array([[7, 26, 0, 24, 7, 7]] * 4, np.uint8)
    write_label(tmp_path / 'gtFine' / 'val' / city / f'{stem}_gtFine_labelIds.png', ids)
    for frame in (20, 21, 22):
        write_rgb(tmp_path / 'leftImg8bit_sequence' / 'val' / city
                  / f'{city}_000000_{frame:06d}_leftImg8bit.png',
                  np.full((4, 6, 3), frame, np.uint8))
    return tmp_path


def test_train_ids_from_the_official_table(cityscapes):
    clip = CityscapesClips(cityscapes, split='val', gap=3, clip_length=2)[0]
    np.testing.assert_array_equal(clip.labels[0, 0], [0, 13, 255, 11, 0, 0])
    assert clip.frames[1].mean() == 22
    assert len(CITYSCAPES_CLASSES) == 19 and CITYSCAPES_CLASSES[0] == 'road'


def test_neighbour_past_the_snippet_is_a_clear_error(cityscapes):
    ds = CityscapesClips(cityscapes, split='val', gap=5, clip_length=2)
    with pytest.raises(FileNotFoundError, match='aachen_000000_000024_leftImg8bit.png'):
        ds[0]


def test_missing_layout_names_the_expected_path(tmp_path, cityscapes):
    with pytest.raises(FileNotFoundError, match='gtFine'):
        (tmp_path / 'other' / 'leftImg8bit' / 'val').mkdir(parents=True)
        CityscapesClips(tmp_path / 'other', split='val')
    with pytest.raises(FileNotFoundError, match='leftImg8bit_sequence'):
        (tmp_path / 'other' / 'gtFine' / 'val').mkdir(parents=True)
        CityscapesClips(tmp_path / 'other', split='val', clip_length=2)
    with pytest.raises(ValueError, match='unknown Cityscapes split'):
        CityscapesClips(cityscapes, split='bogus')


def test_every_unlabeled_training_frame_is_video_to_learn_from(tmp_path):
    for seq in ('000000', '000001'):
        for frame in range(5):
            write_rgb(tmp_path / 'leftImg8bit_sequence' / 'train' / 'bonn'
                      / f'bonn_{seq}_{frame:06d}_leftImg8bit.png',
                      np.full((4, 6, 3), frame, np.uint8))
    write_rgb(tmp_path / 'leftImg8bit' / 'train_extra' / 'erlangen'
              / 'erlangen_000000_000019_leftImg8bit.png', np.zeros((4, 6, 3), np.uint8))
    pairs = cityscapes_video(tmp_path, gap=(1, 2), clip_length=2)
    assert len(pairs) == 2 * (5 - 2)        # the single train_extra frame makes no pair
    clip = pairs[0]
    assert clip.frames.shape[0] == 2 and (clip.labels == 255).all()
    assert clip.frames[1].mean() - clip.frames[0].mean() == clip.gap
    assert len(cityscapes_video(tmp_path, clip_length=1)) == 2 * 5 + 1
    with pytest.raises(FileNotFoundError, match='leftImg8bit_sequence'):
        cityscapes_video(tmp_path / 'nothing')
