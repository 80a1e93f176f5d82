"""Foreground colour estimation in the soft edge (Forte & Pitié 2021) on synthetic composites with a known answer."""

import numpy as np
import pytest

from segedge.effects import alpha_to_uint8, apply_effect, remove_background, replace_background
from segedge.foreground import BAND_MARGIN, estimate_foreground, estimate_foreground_reference, soft_band

PERSON, OLD_BACKGROUND = np.array([200, 60, 40], np.float32), np.array([20, 220, 90], np.float32)


def ramp_scene(height: int = 360, width: int = 640, ramp: int = 8):
    """A person colour on the right over a background colour on the left, an alpha ramp of `ramp` px between."""
    alpha = np.clip((np.arange(width, dtype=np.float32) - (width - ramp) / 2) / ramp, 0, 1)
    alpha = np.tile(alpha, (height, 1))
    alpha8 = alpha_to_uint8(alpha)
    a = alpha8[..., None].astype(np.float32) / 255
    frame = np.clip(a * PERSON + (1 - a) * OLD_BACKGROUND + 0.5, 0, 255).astype(np.uint8)
    return frame, alpha, alpha8


def test_recovers_the_known_foreground_colour_much_better_than_the_frame():
    frame, _, alpha8 = ramp_scene()
    band = soft_band(alpha8, BAND_MARGIN)
    naive = np.abs(frame[band] - PERSON).mean()
    estimated = np.abs(estimate_foreground(frame, alpha8)[band] - PERSON).mean()
    assert naive > 50 and estimated < naive / 5  # 65 -> 11 levels (a wider ramp than the box would fare worse)


def test_fast_path_follows_the_full_resolution_reference():
    rng = np.random.default_rng(0)
    frame, alpha, alpha8 = ramp_scene(ramp=40)
    frame = np.clip(frame + rng.normal(0, 12, frame.shape), 0, 255).astype(np.uint8)  # texture on both sides
    band = soft_band(alpha8, BAND_MARGIN)
    reference = np.clip(estimate_foreground_reference(frame, alpha8 / 255) + 0.5, 0, 255)
    assert np.abs(estimate_foreground(frame, alpha8)[band] - reference[band]).mean() < 3


def test_shape_dtype_and_untouched_pixels():
    frame, _, alpha8 = ramp_scene()
    out = estimate_foreground(frame, alpha8)
    assert out.shape == frame.shape and out.dtype == np.uint8 and out is not frame
    outside = ~soft_band(alpha8, BAND_MARGIN)
    assert np.array_equal(out[outside], frame[outside])


@pytest.mark.parametrize("value", [0, 255])
def test_a_hard_matte_returns_the_frame_itself(value):
    frame = np.random.default_rng(1).integers(0, 256, (30, 40, 3), dtype=np.uint8)
    assert estimate_foreground(frame, np.full((30, 40), value, np.uint8)) is frame


@pytest.mark.parametrize("shape", [(1, 1), (2, 3), (7, 500)])
def test_tiny_and_thin_frames(shape):
    frame = np.full((*shape, 3), 100, np.uint8)
    assert estimate_foreground(frame, np.full(shape, 128, np.uint8)).shape == frame.shape


def test_replace_and_remove_use_the_estimate_unless_switched_off():
    frame, alpha, alpha8 = ramp_scene()
    band = soft_band(alpha8, BAND_MARGIN)
    black = (0, 0, 0)
    a = alpha8[band][:, None] / 255
    truth = a * PERSON  # the person's own colour over black
    clean, tinted = (replace_background(frame, alpha, black, clean_edges=on)[band] for on in (True, False))
    assert np.abs(clean - truth).mean() < np.abs(tinted - truth).mean() / 5
    rgba = remove_background(frame, alpha)
    assert np.array_equal(rgba[..., 3], alpha8)
    assert np.array_equal(rgba[..., :3], estimate_foreground(frame, alpha8))
    assert np.array_equal(apply_effect(frame, alpha, "remove", clean_edges=False)[..., :3], frame)
