"""mIoU on hand-made cases with known answers."""

import math

import pytest
from stkd_ros.metrics import ConfusionMatrix
import torch


def test_perfect_prediction_has_miou_one():
    target = torch.tensor([[0, 1], [2, 2]])
    cm = ConfusionMatrix(3).update(target, target)
    assert cm.miou() == 1.0 and cm.pixel_accuracy() == 1.0


def test_known_confusion():
    target = torch.tensor([0, 0, 1, 1])
    pred = torch.tensor([0, 1, 1, 1])
    iou = ConfusionMatrix(2).update(pred, target).iou()
    # class 0: tp 1, union 2 -> 0.5; class 1: tp 2, union 3 -> 2/3
    torch.testing.assert_close(iou, torch.tensor([0.5, 2 / 3], dtype=torch.float64))


def test_ignore_label_and_absent_classes():
    target = torch.tensor([0, 255, 255, 1])
    pred = torch.tensor([0, 1, 2, 1])
    cm = ConfusionMatrix(4).update(pred, target)
    assert cm.mat.sum() == 2
    iou = cm.iou()
    assert math.isnan(iou[2]) and math.isnan(iou[3])
    assert cm.miou() == 1.0


def test_matrices_merge_like_one_pass():
    a, b = torch.randint(0, 5, (2, 50)), torch.randint(0, 5, (2, 50))
    whole = ConfusionMatrix(5).update(a.flatten(), b.flatten())
    parts = ConfusionMatrix(5).update(a[0], b[0]).merge(ConfusionMatrix(5).update(a[1], b[1]))
    assert torch.equal(whole.mat, parts.mat)


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match='differ in shape'):
        ConfusionMatrix(2).update(torch.zeros(2, 2), torch.zeros(3))
