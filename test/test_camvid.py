"""CamVid loader on tiny trees in both official layouts (11-class SegNet and 32-class)."""

import numpy as np
import pytest
from stkd_ros.data.camvid import camvid_video, CamVidClips, read_label_colors
from stkd_ros.data.classes import IGNORE_INDEX
from stkd_ros.data.image_io import write_label, write_rgb


def _frame(value, h=8, w=12):
    return np.full((h, w, 3), value, np.uint8)


@pytest.fixture
def camvid11(tmp_path):
    for split in ('train', 'val'):
        write_rgb(tmp_path / split / '0001TP_006690.png', _frame(10))
        label = np.zeros((8, 12), np.uint8)
        label[:, 6:] = 11   # void in the SegNet files
        label[0, 0] = 3
        write_label(tmp_path / f'{split}annot' / '0001TP_006690.png', label)
    write_rgb(tmp_path / 'sequences' / '0001TP' / '0001TP_006692.png', _frame(50))
    write_rgb(tmp_path / 'train' / 'Seq05VD_f00030.png', _frame(20))
    write_label(tmp_path / 'trainannot' / 'Seq05VD_f00030.png', np.ones((8, 12), np.uint8))
    write_rgb(tmp_path / 'train' / 'Seq05VD_f00031.png', _frame(30))
    return tmp_path


def test_reads_key_frame_label_and_neighbour(camvid11):
    ds = CamVidClips(camvid11, split='train', gap=2, clip_length=2)
    assert len(ds) == 2
    clip = ds[0]   # 0001TP_006690, neighbour from sequences/
    assert clip.frames.shape == (2, 8, 12, 3)
    assert clip.frames[1].mean() == 50
    assert clip.labels[0, 0, 0] == 3 and clip.labels[0, 0, 11] == IGNORE_INDEX
    assert (clip.labels[1] == IGNORE_INDEX).all()
    assert clip.flows is None


def test_neighbour_in_split_folder_with_letter_prefix(camvid11):
    ds = CamVidClips(camvid11, split='train', gap=1, clip_length=2)
    assert ds[1].frames[1].mean() == 30


def test_missing_neighbour_names_the_expected_file(camvid11):
    ds = CamVidClips(camvid11, split='val', gap=1, clip_length=2)
    with pytest.raises(FileNotFoundError, match='0001TP_006691.png'):
        ds[0]
    assert CamVidClips(camvid11, split='val', clip_length=1)[0].frames.shape[0] == 1


def test_missing_directories_name_the_expected_path(tmp_path):
    with pytest.raises(FileNotFoundError, match=str(tmp_path / 'nope')):
        CamVidClips(tmp_path / 'nope')
    (tmp_path / 'train').mkdir()
    with pytest.raises(FileNotFoundError, match='trainannot'):
        CamVidClips(tmp_path)


def test_color_label_with_three_channels_is_rejected(camvid11):
    write_rgb(camvid11 / 'trainannot' / '0001TP_006690.png', _frame(3))
    with pytest.raises(ValueError, match='channels'):
        CamVidClips(camvid11, clip_length=1)[0]


def test_32_class_colour_labels_map_to_11(tmp_path):
    (tmp_path / 'label_colors.txt').write_text(
        '128 64 128\tRoad\n128 0 192\tLaneMkgsDriv\n64 0 128\tCar\n'
        '192 128 192\tTruck_Bus\n0 0 0\tVoid\n128 128 128\tSky\n')
    write_rgb(tmp_path / 'test' / '0006R0_f01890.png', _frame(1, 2, 3))
    rgb = np.array([[(128, 64, 128), (128, 0, 192), (64, 0, 128)],
                    [(192, 128, 192), (0, 0, 0), (1, 2, 3)]], np.uint8)
    write_rgb(tmp_path / 'LabeledApproved_full' / '0006R0_f01890_L.png', rgb)
    clip = CamVidClips(tmp_path, split='test', labels=32, clip_length=1)[0]
    np.testing.assert_array_equal(clip.labels[0], [[3, 3, 8], [8, 255, 255]])
    assert read_label_colors(tmp_path / 'label_colors.txt')[(64, 0, 128)] == 'Car'


def test_32_class_needs_colour_table(tmp_path):
    (tmp_path / 'train').mkdir()
    (tmp_path / 'LabeledApproved_full').mkdir()
    with pytest.raises(FileNotFoundError, match='label_colors.txt'):
        CamVidClips(tmp_path, labels=32)


def test_video_frames_are_unlabeled_clips_and_held_out_drives_stay_out(tmp_path):
    for n in range(6):
        write_rgb(tmp_path / 'sequences' / '0006R0' / f'0006R0_f{n:05d}.png', _frame(n))
        write_rgb(tmp_path / 'sequences' / 'Seq05VD' / f'Seq05VD_f{n:05d}.png', _frame(n))
    write_rgb(tmp_path / 'sequences' / '0006R0' / '0006R0_f00009.png', _frame(9))   # a gap
    write_rgb(tmp_path / 'test' / 'Seq05VD_f00000.png', _frame(0))
    video = camvid_video(tmp_path, gap=(1, 2), clip_length=2)
    assert len(video) == 6 - 2                  # 0006R0 frames 0-5; the lone 9 and Seq05VD not
    assert all('Seq05VD' not in video[i].name for i in range(len(video)))
    clip = video[3]
    assert clip.name == '0006R0_f00003' and (clip.labels == IGNORE_INDEX).all()
    with pytest.raises(FileNotFoundError, match='sequences'):
        camvid_video(tmp_path / 'none')
