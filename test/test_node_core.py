"""The ROS-free parts of the nodes: conversion, the frame slot, statistics, QoS, flicker."""

import threading

import cv2
import numpy as np
import pytest
from stkd_ros.flicker import FlickerMeter, StampPairer
from stkd_ros.image_msgs import compressed_to_rgb, image_to_rgb, ImageError, mask_to_array
from stkd_ros.nodes.frame_failures import FrameFailures, MAX_KINDS_LOGGED, one_line
from stkd_ros.nodes.frame_slot import FrameSlots
from stkd_ros.nodes.qos import choose_reliability
from stkd_ros.nodes.stats import RollingStats

RGB = np.random.default_rng(0).integers(0, 255, (5, 7, 3), dtype=np.uint8)


@pytest.mark.parametrize('encoding,array', [
    ('rgb8', RGB), ('bgr8', RGB[..., ::-1]),
    ('rgba8', np.dstack([RGB, np.full((5, 7), 9, np.uint8)])),
    ('bgra8', np.dstack([RGB[..., ::-1], np.full((5, 7), 9, np.uint8)])),
])
def test_colour_encodings_decode_to_rgb(encoding, array):
    data = np.ascontiguousarray(array).tobytes()
    out = image_to_rgb(5, 7, encoding, 7 * array.shape[2], data)
    np.testing.assert_array_equal(out, RGB)


def test_mono_encodings_and_byte_order():
    gray = RGB[..., 0]
    np.testing.assert_array_equal(image_to_rgb(5, 7, 'mono8', 7, gray.tobytes())[..., 1], gray)
    wide = gray.astype(np.uint16) * 256 + 17
    little = image_to_rgb(5, 7, 'mono16', 14, wide.astype('<u2').tobytes(), 0)
    big = image_to_rgb(5, 7, 'mono16', 14, wide.astype('>u2').tobytes(), 1)
    np.testing.assert_array_equal(little[..., 0], gray)
    np.testing.assert_array_equal(big, little)


def test_row_padding_is_skipped():
    padded = np.zeros((5, 24), np.uint8)
    padded[:, :21] = RGB.reshape(5, 21)
    np.testing.assert_array_equal(image_to_rgb(5, 7, 'rgb8', 24, padded.tobytes()), RGB)


@pytest.mark.parametrize('args,message', [
    ((5, 7, 'yuv422', 14, b'\0' * 70), 'unsupported encoding'),
    ((0, 7, 'rgb8', 21, b''), 'empty image'),
    ((5, 7, 'rgb8', 20, b'\0' * 100), 'shorter than a row'),
    ((5, 7, 'rgb8', 21, b'\0' * 104), 'data has 104 bytes'),
    ((100000, 7, 'rgb8', 21, b'\0' * 21), 'absurd image size'),
])
def test_bad_messages_raise_one_line_errors(args, message):
    with pytest.raises(ImageError, match=message):
        image_to_rgb(*args)


def test_masks_decode_to_class_ids_and_other_encodings_are_rejected():
    from dataclasses import replace
    from stkd_ros.bag.messages import image_message
    msg = image_message(np.array([[0, 1, 2], [3, 4, 5]], np.uint8), 7, 'cam')
    np.testing.assert_array_equal(mask_to_array(msg), [[0, 1, 2], [3, 4, 5]])
    with pytest.raises(ImageError, match="mask encoding 'rgb8' is not mono8"):
        mask_to_array(replace(msg, encoding='rgb8'))
    with pytest.raises(ImageError, match='data has 5 bytes'):
        mask_to_array(replace(msg, data=np.zeros(5, np.uint8)))


def test_compressed_images():
    ok, jpg = cv2.imencode('.png', RGB[..., ::-1])
    np.testing.assert_array_equal(compressed_to_rgb('png', jpg.tobytes()), RGB)
    with pytest.raises(ImageError, match='cannot decode'):
        compressed_to_rgb('jpeg', b'not a jpeg')
    with pytest.raises(ImageError, match='empty'):
        compressed_to_rgb('jpeg', b'')


def test_latest_slot_keeps_only_the_newest_and_counts_drops():
    slot = FrameSlots()
    for i in range(5):
        slot.put('', i)
    assert slot.take(0.1) == {'': 4} and slot.dropped == {'': 4}
    assert slot.take(0.01) == {}
    got = []
    consumer = threading.Thread(target=lambda: got.append(slot.take(5.0)))
    consumer.start()
    slot.put('', 'x')
    consumer.join(5.0)
    assert got == [{'': 'x'}]
    slot.close()
    assert slot.take(1.0) == {}


def test_each_camera_keeps_its_newest_frame_and_one_take_gets_them_all():
    slots = FrameSlots(['front', 'left', 'rear'])
    for i in range(3):
        slots.put('front', f'f{i}')
    slots.put('rear', 'r0')
    assert slots.take(0.1) == {'front': 'f2', 'rear': 'r0'}
    assert slots.dropped == {'front': 2, 'left': 0, 'rear': 0}
    slots.put('left', 'l0')
    assert slots.take(0.1) == {'left': 'l0'}


def test_rolling_stats():
    stats = RollingStats(window=10)
    for i in range(11):
        stats.record(0.010 + 0.001 * i, now=i * 0.1)
    s = stats.summary()
    assert s['rate_hz'] == pytest.approx(10.0)
    assert s['p50_ms'] == pytest.approx(15.5) and s['processed'] == 11   # last 10 kept


def test_reliability_follows_the_publishers():
    assert choose_reliability('auto', []) == 'reliable'
    assert choose_reliability('auto', ['reliable', 'reliable']) == 'reliable'
    assert choose_reliability('auto', ['reliable', 'best_effort']) == 'best_effort'
    assert choose_reliability('best_effort', ['reliable']) == 'best_effort'
    with pytest.raises(ValueError, match='reliability must be'):
        choose_reliability('sometimes', [])


def test_stamp_pairer_matches_in_either_order():
    pairer = StampPairer(keep=2)
    assert pairer.add_image(1, 'img1') is None
    assert pairer.add_mask(1, 'mask1') == ('img1', 'mask1')
    assert pairer.add_mask(2, 'mask2') is None
    assert pairer.add_image(2, 'img2') == ('img2', 'mask2')
    for s in (3, 4, 5):
        pairer.add_image(s, s)
    assert 3 not in pairer.images   # only the newest `keep` wait


def test_flicker_meter_on_a_panning_scene(tmp_path):
    rng = np.random.default_rng(0)
    world = cv2.GaussianBlur(rng.integers(0, 255, (120, 400), dtype=np.uint8), (0, 0), 2)
    labels = (np.arange(400)[None, :].repeat(120, 0) // 40).astype(np.uint8)
    meter = FlickerMeter(window=10, log_path=tmp_path / 'flicker.csv')
    results = []
    for t in range(5):
        x = 3 * t   # the camera pans: the scene moves left by 3 px per frame
        results.append(meter.update(t, world[:, x:x + 200], labels[:, x:x + 200]))
    assert results[0] is None
    assert max(r['flicker'] for r in results[1:]) < 0.02
    noisy = FlickerMeter()
    noisy.update(0, world[:, :200], labels[:, :200])
    r = noisy.update(1, world[:, :200], rng.integers(0, 5, (120, 200), dtype=np.uint8))
    assert r['flicker'] > 0.5
    meter.close()
    rows = (tmp_path / 'flicker.csv').read_text().splitlines()
    assert len(rows) == 5 and rows[0].endswith('flicker_total,tc_total')
    summary = meter.summary()
    assert summary['steps'] == 4 and summary['flicker'] < 0.02
    assert summary['flicker'] == pytest.approx(float(rows[-1].split(',')[4]), abs=1e-6)


def test_a_bigger_buffer_queues_and_drops_the_oldest():
    slot = FrameSlots(capacity=3)
    for i in range(5):
        slot.put('', i)
    assert [slot.take(0.1) for _ in range(3)] == [{'': 2}, {'': 3}, {'': 4}]
    assert slot.dropped == {'': 2}
    with pytest.raises(ValueError, match='at least 1'):
        FrameSlots(capacity=0)


def _raised(exc):
    """Return ``exc`` raised and caught, with its traceback (where it was raised)."""
    try:
        raise exc
    except Exception as caught:
        return caught


def test_each_kind_of_failure_logs_its_traceback_once_and_a_run_of_them_gives_up():
    failures = FrameFailures(max_consecutive=3)
    first, again = (failures.failed(_raised(RuntimeError('bad frame'))) for _ in range(2))
    assert (first.first_of_its_kind, first.give_up) == (True, False)
    assert (again.first_of_its_kind, again.give_up) == (False, False)
    other = failures.failed(_raised(ValueError('another bug\nsecond line')))
    assert other.first_of_its_kind and other.give_up   # 3 in a row
    assert (failures.total, failures.consecutive) == (3, 3)
    assert failures.last == 'ValueError: another bug'
    failures.served()
    assert failures.consecutive == 0 and failures.total == 3
    assert not failures.failed(_raised(RuntimeError('bad frame'))).give_up


def test_zero_never_gives_up_and_the_tracebacks_logged_are_bounded():
    failures = FrameFailures(max_consecutive=0)
    verdicts = [failures.failed(_raised(type(f'Kind{i}', (Exception,), {})()))
                for i in range(MAX_KINDS_LOGGED + 5)]
    assert not any(v.give_up for v in verdicts)
    assert sum(v.first_of_its_kind for v in verdicts) == MAX_KINDS_LOGGED
    assert one_line(KeyError()) == 'KeyError'
