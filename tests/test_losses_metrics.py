"""Loss and metrics against values worked out by hand."""

import math

import numpy as np
import pytest

from segedge.metrics import MetricAverager, mask_metrics


def test_mask_metrics_by_hand():
    pred = np.array([[1, 1, 0, 0]], bool)
    target = np.array([[1, 0, 1, 0]], bool)
    scores = mask_metrics(pred, target)  # tp=1 fp=1 fn=1 tn=1
    assert scores["iou"] == pytest.approx(1 / 3)
    assert scores["miou"] == pytest.approx((1 / 3 + 1 / 3) / 2)
    assert scores["dice"] == pytest.approx(2 / 4)
    assert scores["pixel_accuracy"] == pytest.approx(0.5)


def test_empty_prediction_and_target_is_perfect():
    empty = np.zeros((4, 4), bool)
    assert mask_metrics(empty, empty) == {"iou": 1.0, "miou": 1.0, "dice": 1.0, "pixel_accuracy": 1.0}


def test_averager_is_mean_over_images():
    averager = MetricAverager()
    full = np.ones((2, 2), bool)
    averager.add(full, full)
    averager.add(~full, full)
    assert averager.result()["iou"] == pytest.approx(0.5)
    assert averager.count == 2


def test_size_mismatch_is_refused():
    with pytest.raises(ValueError):
        mask_metrics(np.zeros((2, 2)), np.zeros((2, 3)))


def test_dice_bce_by_hand():
    torch = pytest.importorskip("torch")
    from segedge.training.losses import DiceBCELoss

    logits = torch.tensor([[[[0.0, 0.0]]]])  # p = 0.5 everywhere
    target = torch.tensor([[[[1.0, 0.0]]]])
    bce = math.log(2)
    dice = 1 - (2 * 0.5 + 1) / (1.0 + 1.0 + 1)
    assert DiceBCELoss()(logits, target).item() == pytest.approx(bce + dice, rel=1e-6)
    perfect = DiceBCELoss()(torch.tensor([[[[30.0, -30.0]]]]), target).item()
    assert perfect == pytest.approx(0.0, abs=1e-6)
