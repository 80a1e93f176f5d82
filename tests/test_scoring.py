"""The one scoring path (segedge.scoring) and the one ground-truth reader (segedge.pairs)."""

import cv2
import numpy as np
import pytest

from segedge.errors import SegedgeError
from segedge.pairs import read_mask, read_pair
from segedge.scoring import image_mask, mean_iou, person_mask
from segedge.spec import ModelSpec


def test_masks_are_person_above_127_or_above_0_when_they_hold_only_0_and_1(tmp_path):
    soft = tmp_path / "soft.png"
    cv2.imwrite(str(soft), np.array([[0, 100, 127, 128, 255]], np.uint8))
    assert read_mask(soft).tolist() == [[False, False, False, True, True]]
    binary = tmp_path / "binary.png"
    cv2.imwrite(str(binary), np.array([[0, 1, 1, 0]], np.uint8))
    assert read_mask(binary).tolist() == [[False, True, True, False]]


def test_pairs_of_another_size_are_one_line_errors(tmp_path):
    image, mask = tmp_path / "a.jpg", tmp_path / "a.png"
    cv2.imwrite(str(image), np.zeros((8, 6, 3), np.uint8))
    cv2.imwrite(str(mask), np.zeros((8, 6), np.uint8))
    rgb, truth = read_pair(image, mask)
    assert rgb.shape == (8, 6, 3) and truth.shape == (8, 6) and truth.dtype == bool
    cv2.imwrite(str(mask), np.zeros((4, 6), np.uint8))
    with pytest.raises(SegedgeError, match="size mismatch: image .*a.jpg is 6x8, mask .*a.png is 6x4"):
        read_pair(image, mask)


def test_person_mask_honours_the_spec_output_kind():
    image = np.zeros((8, 8, 3), np.uint8)
    output = np.full((4, 4), 0.7, np.float32)  # a probability of 0.7, or a logit whose sigmoid is 0.67
    assert person_mask(output, ModelSpec(output="probabilities", threshold=0.69), image, guided=False).all()
    assert not person_mask(output, ModelSpec(output="logits", threshold=0.69), image, guided=False).any()


def test_masks_come_at_the_image_size_whichever_the_upsampling():
    image = np.zeros((30, 40, 3), np.uint8)
    prob = np.zeros((8, 8), np.float32)
    prob[:, 4:] = 1.0
    for guided in (True, False):
        mask = image_mask(prob, image, guided, 0.5)
        assert mask.shape == (30, 40) and mask[:, :15].sum() == 0 and mask[:, 25:].all()


def test_iou_is_the_mean_over_images_not_pooled_over_pixels():
    big, small = np.ones((10, 10), bool), np.zeros((10, 10), bool)
    small[0, 0] = True
    missed = np.zeros((10, 10), bool)
    # pooled over pixels this would be 100/101; per image, the missed small person counts as much as the big one
    assert mean_iou([big, missed], [big, small]) == pytest.approx(0.5)
