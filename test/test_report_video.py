"""
The report a person opens: the side-by-side video, report.html in a real Chromium, the review.

The browser test needs Chromium and ChromeDriver from Debian's packages (.ci/run installs
them); it is skipped with the reason where they are missing, unless STKD_REQUIRE_BROWSER=1
(CI) makes that a failure.
"""

import html
import json
import os
from pathlib import Path
import shutil

import av
import browser
import cv2
from model_helpers import tiny_model_file
import numpy as np
import pytest
from stkd_ros.commands.bag_evaluation import ModelTrack
from stkd_ros.commands.eval_bag import eval_bag
from stkd_ros.commands.synth import IMAGE_TOPIC, synth
from stkd_ros.data.classes import CAMVID_CLASSES, CAMVID_PALETTE, palette_lut
from stkd_ros.data.image_io import write_label
from stkd_ros.flow.pairs import StreamFlow
from stkd_ros.inference import Segmenter
from stkd_ros.labeling.store import labeled_frames, StoreError
from stkd_ros.report import panels
from stkd_ros.report.drive_video import DriveVideo
from stkd_ros.report.label_review import write_label_review
from stkd_ros.report.video import VideoWriter

DRIVE_FRAMES = 12


def _decode(path):
    """Every frame of a video as (presentation time in s, HxWx3 RGB)."""
    with av.open(str(path)) as container:
        return [(float(f.time), f.to_ndarray(format='rgb24'))
                for f in container.decode(video=0)]


@pytest.fixture(scope='module')
def models(tmp_path_factory):
    d = tmp_path_factory.mktemp('models')
    return [tiny_model_file(d / 'a.safetensors', 0), tiny_model_file(d / 'b.safetensors', 1)]


@pytest.fixture(scope='module')
def report(models, tmp_path_factory):
    """eval-bag's report of a 12-frame synthetic drive (30 Hz) with two models."""
    root = tmp_path_factory.mktemp('drive')
    synth(root, clips=1, frames=DRIVE_FRAMES, size=(64, 128), seed=4, bag=True)
    summary = eval_bag(root / 'bag', models, IMAGE_TOPIC, label_topic='/camera/labels',
                       report=root / 'report')
    return Path(summary['report_html']).parent, summary


def test_video_writer_times_frames_by_their_stamps(tmp_path):
    path = tmp_path / 'v.mp4'
    period = 100_000_000                                  # 10 Hz
    with VideoWriter(path) as writer:
        for i in range(15):
            image = np.zeros((31, 45, 3), np.uint8)       # odd sides: padded to even
            image[:, :3 * i] = 255
            writer.add(image, 5 * 10**18 + i * period + (period if i >= 10 else 0))
    info = writer.info
    assert (info.frames, info.width, info.height, info.fps) == (15, 46, 32, 10.0)
    assert info.duration_s == pytest.approx(1.6)          # one frame held twice as long
    decoded = _decode(path)
    assert [t for t, _ in decoded] == pytest.approx([i / 10 + (i >= 10) / 10
                                                     for i in range(15)], abs=1e-4)
    assert decoded[7][1].shape == (32, 46, 3)
    assert decoded[7][1][:, :20].mean() > 200 and decoded[7][1][:, 23:44].mean() < 40
    assert sorted(p.name for p in tmp_path.iterdir()) == ['v.mp4']


def test_video_writer_keeps_no_partial_file(tmp_path):
    with pytest.raises(ValueError, match='differs from the first'):
        with VideoWriter(tmp_path / 'v.mp4') as writer:
            for i in range(3):
                writer.add(np.zeros((20, 20 + 2 * (i == 2), 3), np.uint8), i * 10**8)
    assert list(tmp_path.iterdir()) == []


def test_a_pixel_made_to_flicker_shows_in_the_change_map(models, tmp_path):
    # A still scene (the flow finds no motion, every pixel is visible), and masks the test
    # writes: a block changes class at the third frame and changes back at the fourth.
    rng = np.random.default_rng(0)
    scene = cv2.GaussianBlur(rng.integers(0, 255, (64, 128, 3), np.uint8), (5, 5), 0)
    track = ModelTrack('a', Segmenter(models[0]))
    stream = StreamFlow()
    masks = [np.full((64, 128), 3, np.uint8) for _ in range(5)]
    masks[2][20:36, 40:72] = 8
    with DriveVideo(tmp_path / 'drive.mp4') as video:
        for i, mask in enumerate(masks):
            motion = stream.update(scene)
            track.add_mask(i, mask, mask, motion)
            video.add(scene, i * 33_333_333, [track], [mask])
    assert track.flicker[1] == pytest.approx(16 * 32 / (64 * 128), rel=0.05)
    frames = [image for _, image in _decode(video.info.path)]
    assert len(frames) == 5 and frames[0].shape == (video.info.height, video.info.width, 3)
    ph, pw = panels.panel_size((64, 128))                # panels are 160x320 here
    top = ph + 2 * panels.CAPTION_HEIGHT                  # the change map: second row, column 2
    change = [f[top:top + ph, pw:2 * pw].astype(int) for f in frames]
    red = [(c[..., 0] > 180) & (c[..., 1] < 110) & (c[..., 2] < 110) for c in change]
    block = (slice(20 * ph // 64 + 3, 36 * ph // 64 - 3),
             slice(40 * pw // 128 + 3, 72 * pw // 128 - 3))
    for step in (2, 3):                                  # changed into the block, and back
        assert red[step][block].mean() > 0.9, step
        assert red[step].sum() < 1.3 * red[step][block].size + 400, step
    for step in (0, 1, 4):                               # no change at these frames
        assert red[step].mean() < 0.002, step


def test_eval_bag_video_has_every_frame_at_the_bag_rate(report):
    folder, summary = report
    info = summary['video']
    frames = _decode(folder / info['file'])
    assert len(frames) == DRIVE_FRAMES == info['frames'] == summary['frames']
    assert frames[0][1].shape == (info['height'], info['width'], 3)
    assert info['fps'] == pytest.approx(30.0)
    assert [t for t, _ in frames] == pytest.approx([i / 30 for i in range(DRIVE_FRAMES)],
                                                   abs=1e-3)
    assert info['duration_s'] == pytest.approx(DRIVE_FRAMES / 30)


def test_report_folder_holds_the_page_and_what_it_shows(report):
    folder, summary = report
    page = (folder / 'report.html').read_text()
    assert html.escape(summary['stability_flow']) in page and 'forward-backward' in page
    for file in ['drive.mp4', 'flicker_over_time.png', 'per_class.png', 'latency.png']:
        assert f'src="{file}"' in page and (folder / file).is_file(), file
    assert 'http://' not in page and 'https://' not in page   # nothing from the network
    assert page.index('<th>flicker</th>') < page.index('<th>TC</th>') < page.index('<th>mIoU')
    assert json.loads((folder / 'metrics.json').read_text())['video']['file'] == 'drive.mp4'
    assert not [p for p in folder.parent.iterdir() if '.partial' in p.name]


def test_report_page_plays_in_chromium(report):
    reason = browser.missing()
    if reason:
        if os.environ.get('STKD_REQUIRE_BROWSER') == '1':
            pytest.fail(f'STKD_REQUIRE_BROWSER=1 but {reason}')
        pytest.skip(reason)
    folder, summary = report
    with browser.Browser() as chromium:
        chromium.load((folder / 'report.html').as_uri())
        video = chromium.run_async("""
            const done = arguments[arguments.length - 1];
            const v = document.getElementById('drive');
            const answer = () => done({duration: v.duration, error: v.error && v.error.code,
                                       width: v.videoWidth, height: v.videoHeight});
            if (v.readyState >= 1 || v.error) { answer(); } else {
              v.addEventListener('loadedmetadata', answer);
              v.addEventListener('error', answer);
            }""")
        images = chromium.run("""return Array.from(document.images).map(
            i => [i.getAttribute('src'), i.complete && i.naturalWidth > 0]);""")
        rows = chromium.run("return document.querySelectorAll('table tbody tr').length;")
        shot = cv2.imdecode(np.frombuffer(chromium.screenshot(), np.uint8), cv2.IMREAD_COLOR)
        log = chromium.console()
    fps = summary['video']['fps']
    assert video['error'] is None, video
    assert abs(video['duration'] - DRIVE_FRAMES / fps) <= 1 / fps, video
    assert (video['width'], video['height']) == (summary['video']['width'],
                                                 summary['video']['height'])
    assert images and all(ok for _, ok in images), images
    assert rows == 2
    errors = [e for e in log if e['level'] in ('SEVERE', 'WARNING')]
    assert not errors, errors
    grey = cv2.cvtColor(shot, cv2.COLOR_BGR2GRAY)
    assert shot.shape[0] > 500 and grey.std() > 20, 'the screenshot is blank'
    assert len(np.unique(shot.reshape(-1, 3), axis=0)) > 50


def _store(root, sequence, labels, confidence):
    for t, (lab, conf) in enumerate(zip(labels, confidence)):
        write_label(Path(root) / 'labels' / sequence / f'{t:06d}.png', lab)
        write_label(Path(root) / 'confidence' / sequence / f'{t:06d}.png', conf)


def test_label_review_shows_frame_labels_and_confidence(small_world, tmp_path):
    clip = small_world.clip(0, start=0, length=4, gap=1)
    confidence = []
    for t in range(4):
        conf = np.full(clip.labels[t].shape, 255, np.uint8)
        conf[:, :conf.shape[1] // 2] = 0                  # unsure on the left half
        confidence.append(conf)
    _store(tmp_path / 'store', 'street_0', clip.labels, confidence)
    items = labeled_frames(tmp_path / 'store', 'street_0', lambda t: clip.frames[t])
    info = write_label_review(items, tmp_path / 'review.mp4', classes=CAMVID_CLASSES,
                              palette=CAMVID_PALETTE, fps=30, total=4)
    frames = _decode(tmp_path / 'review.mp4')
    assert len(frames) == info.frames == 4 and info.duration_s == pytest.approx(4 / 30)
    ph, pw = panels.panel_size(clip.frames[0].shape)
    image = frames[1][1].astype(int)
    top = ph + 2 * panels.CAPTION_HEIGHT
    conf = image[top:top + ph, pw:2 * pw]
    viridis_low, viridis_high = (68, 1, 84), (253, 231, 37)
    left, right = conf[5:-5, 5:pw // 2 - 5], conf[5:-5, pw // 2 + 5:-5]
    assert np.abs(left - viridis_low).max(-1).mean() < 25
    assert np.abs(right - viridis_high).max(-1).mean() < 25
    # The labels panel: the frame blended with each pixel's class colour, grey without one.
    labels = panels.fit(clip.labels[1], (ph, pw), nearest=True)
    picture = panels.fit(clip.frames[1], (ph, pw))
    expected = np.where((labels == 255)[..., None], panels.grey(picture, 0.6),
                        panels.overlay(picture, palette_lut(CAMVID_PALETTE)[labels]))
    shown = image[panels.CAPTION_HEIGHT:panels.CAPTION_HEIGHT + ph, pw:2 * pw]
    assert np.abs(shown - expected.astype(int)).mean() < 8


def test_label_review_of_nothing_is_an_error_and_writes_nothing(tmp_path):
    (tmp_path / 'store' / 'labels' / 'empty').mkdir(parents=True)
    with pytest.raises(StoreError, match="no labeled frame of sequence 'empty'"):
        write_label_review(labeled_frames(tmp_path / 'store', 'empty', lambda t: None),
                           tmp_path / 'review.mp4', classes=CAMVID_CLASSES,
                           palette=CAMVID_PALETTE)
    assert sorted(p.name for p in tmp_path.iterdir()) == ['store']


def test_the_demo_puts_its_tables_on_the_report_page(report, tmp_path):
    from stkd_ros.commands.demo import _page
    folder = tmp_path / 'report'
    shutil.copytree(report[0], folder)
    flow = 'exact flow (synthetic world), photometric occlusion check (0.08)'
    summary = {'held_out': {name: {'miou': 0.5, 'flicker': f, 'tc': 0.9, 'ms_per_frame': 3.0,
                                   'stability_flow': flow}
                            for name, f in (('teacher', 0.01), ('distilled', 0.02))},
               'live': {'distilled': {'flicker': 0.03, 'tc': 0.8, 'steps': 11}}}
    page = _page(folder, summary).read_text()
    assert html.escape("from the teacher's classes of each view") in page
    assert '32 held-out synthetic streets' in page and html.escape(flow) in page
    assert '<td>distilled</td><td>0.0200</td><td>0.9000</td><td>0.5000</td>' in page
    assert '<td>distilled</td><td>0.0300</td><td>0.8000</td><td>11</td>' in page
    assert 'src="drive.mp4"' in page      # eval-bag's page, with the demo's tables added
