"""Loss and metrics against values worked out by hand."""

import math

import numpy as np
import pytest

from segedge.metrics import (
    MetricAverager,
    SourceAverager,
    boundary_band,
    boundary_iou,
    boundary_width,
    mask_metrics,
    source_of,
)


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
    assert mask_metrics(empty, empty) == {"iou": 1.0, "miou": 1.0, "dice": 1.0, "pixel_accuracy": 1.0,
                                          "boundary_iou": 1.0}


def square(top: int, left: int, side: int = 40, size: int = 100) -> np.ndarray:
    mask = np.zeros((size, size), bool)
    mask[top:top + side, left:left + side] = True
    return mask


def test_boundary_band_is_the_inner_ring_within_two_percent_of_the_diagonal():
    assert boundary_width((100, 100)) == 3  # round(0.02 * 141.4)
    assert boundary_band(square(20, 20), 3).sum() == 40 * 40 - 34 * 34  # a 3-px ring inside the square
    assert boundary_band(np.ones((100, 100), bool), 3).sum() == 100 * 100 - 94 * 94  # the frame's edge counts


def test_boundary_iou_of_a_shifted_square_by_hand():
    # Two 40-px squares 10 px apart: 3-px rings of 444 px each. Where they overlap (columns 30-59), both rings hold
    # only the top and bottom 3 rows (6 x 30 = 180 px): their side bands (columns 57-59 and 30-32) never meet.
    a, b = square(20, 20), square(20, 30)
    assert boundary_iou(a, b) == pytest.approx(180 / (444 + 444 - 180))
    assert mask_metrics(a, b)["iou"] == pytest.approx(1200 / 2000)  # the region IoU forgives more


def test_boundary_iou_conventions():
    empty, a = np.zeros((100, 100), bool), square(20, 20)
    assert boundary_iou(a, a) == 1.0
    assert boundary_iou(empty, empty) == 1.0  # no boundary to find, none found
    assert boundary_iou(a, empty) == 0.0 and boundary_iou(empty, a) == 0.0


def test_averager_is_mean_over_images():
    averager = MetricAverager()
    full = np.ones((2, 2), bool)
    averager.add(full, full)
    averager.add(~full, full)
    assert averager.result()["iou"] == pytest.approx(0.5)
    assert averager.count == 2


def test_source_is_the_stem_before_its_first_underscore():
    assert source_of("val/images/vik_0090.jpg") == "vik" and source_of("ccp_extra_01.png") == "ccp"
    assert source_of("portrait.jpg") == "portrait"  # no prefix: the image is its own source


def test_source_averager_means_each_source_apart():
    full = np.ones((2, 2), bool)
    averager = SourceAverager()
    averager.add("ccp_1.jpg", full, full)
    averager.add("vik_1.jpg", ~full, full)
    averager.add("ccp_2.jpg", full, full)
    by_source = averager.by_source(4)
    assert list(by_source) == ["ccp", "vik"]
    assert by_source["ccp"]["iou"] == 1.0 and by_source["ccp"]["images"] == 2
    assert by_source["vik"]["iou"] == 0.0 and by_source["vik"]["images"] == 1
    assert averager.overall.result()["iou"] == pytest.approx(2 / 3) and averager.overall.count == 3


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
