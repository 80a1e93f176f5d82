"""Compositing effects on synthetic frames: exact pixel expectations, no model needed."""

import numpy as np
import pytest

from segedge.effects import apply_effect, blur_background, cover, parse_color, remove_background, replace_background
from segedge.errors import SegedgeError


@pytest.fixture
def scene():
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (60, 80, 3), dtype=np.uint8)
    alpha = np.zeros((60, 80), np.float32)
    alpha[10:50, 20:60] = 1.0  # the "person"
    return frame, alpha


def test_blur_keeps_person_pixels_and_changes_background(scene):
    frame, alpha = scene
    out = blur_background(frame, alpha, strength=5)
    person = alpha == 1
    assert np.array_equal(out[person], frame[person])
    assert np.abs(out[~person].astype(int) - frame[~person]).mean() > 20


def test_blur_does_not_bleed_person_colour_into_background():
    frame = np.zeros((40, 40, 3), np.uint8)
    frame[:, 20:] = 255  # white person on the right, black background on the left
    alpha = np.zeros((40, 40), np.float32)
    alpha[:, 20:] = 1.0
    out = blur_background(frame, alpha, strength=8)
    assert out[:, :20].max() == 0  # a plain blur would spread white into the background: the halo


def test_remove_gives_alpha_equal_to_mask(scene):
    frame, alpha = scene
    alpha = alpha * 0.75
    rgba = remove_background(frame, alpha, clean_edges=False)  # the estimated edge colour: test_foreground.py
    assert rgba.shape == (60, 80, 4)
    assert np.array_equal(rgba[..., :3], frame)
    assert np.array_equal(rgba[..., 3], np.round(alpha * 255).astype(np.uint8))


def test_replace_with_colour_and_image(scene):
    frame, alpha = scene
    green = replace_background(frame, alpha, (0, 255, 0))
    assert np.array_equal(green[alpha == 1], frame[alpha == 1])
    assert (green[alpha == 0] == (0, 255, 0)).all()
    plate = np.full((10, 300, 3), 7, np.uint8)  # other aspect ratio: covered, not stretched
    replaced = replace_background(frame, alpha, plate)
    assert (replaced[alpha == 0] == 7).all()


def test_cover_fills_without_distortion():
    image = np.zeros((100, 200, 3), np.uint8)
    image[:, 50:150] = 255  # centre half
    out = cover(image, (100, 100))
    assert out.shape == (100, 100, 3) and out.min() == 255


def test_mask_effect_is_grayscale_matte(scene):
    frame, alpha = scene
    out = apply_effect(frame, alpha * 0.5, "mask")
    assert out.ndim == 2 and set(np.unique(out)) == {0, 128}


def test_colours_and_bad_effect():
    assert parse_color("green") == (0, 177, 64)
    assert parse_color("#ff0080") == (255, 0, 128)
    assert parse_color("1,2,3") == (1, 2, 3)
    with pytest.raises(SegedgeError):
        parse_color("1,2")
    with pytest.raises(SegedgeError, match="unknown effect"):
        apply_effect(np.zeros((2, 2, 3), np.uint8), np.zeros((2, 2)), "sepia")
