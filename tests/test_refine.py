"""Matte refinement on synthetic frames: guided upsampling, threshold shift, temporal smoothing."""

import numpy as np
import pytest

from segedge.errors import SegedgeError
from segedge.refine import TemporalSmoother, resize_mask, shift_threshold, upsample_mask


def edge_scene(edge: int = 61):
    frame = np.zeros((128, 128, 3), np.uint8)
    frame[:, edge:] = 255  # true edge between model pixels
    prob = np.zeros((16, 16), np.float32)
    prob[:, 8:] = 1.0  # coarse mask: edge at x=64 after upsampling
    return frame, prob


def test_guided_upsampling_follows_image_edges():
    frame, prob = edge_scene()
    matte = upsample_mask(prob, frame)
    assert matte.shape == (128, 128) and matte.dtype == np.float32
    assert 0.0 <= matte.min() and matte.max() <= 1.0
    assert matte[:, 62:64].mean() > 0.5  # pixels right of the image edge follow it, not the coarse grid
    assert matte[:, :40].max() < 0.05 and matte[:, 90:].min() > 0.95


def test_guided_edge_is_sharper_than_bilinear():
    frame, prob = edge_scene(edge=64)
    guided, plain = upsample_mask(prob, frame), resize_mask(prob, (128, 128))
    soft = lambda m: ((m > 0.05) & (m < 0.95)).sum(axis=1).mean()  # noqa: E731 - width of the soft band
    assert soft(guided) < soft(plain)


def test_flat_frame_gives_a_smooth_matte_without_texture():
    frame = np.full((64, 96, 3), 128, np.uint8)  # no edges to follow: the matte must stay smooth
    prob = np.linspace(0, 1, 12 * 8, dtype=np.float32).reshape(8, 12)
    matte = upsample_mask(prob, frame)
    assert matte.shape == (64, 96)
    assert np.abs(np.diff(matte, axis=1)).max() < 0.1


def test_non_square_frames_and_odd_sizes():
    frame = np.random.default_rng(0).integers(0, 256, (37, 53, 3), dtype=np.uint8)
    assert upsample_mask(np.full((16, 16), 0.7, np.float32), frame).shape == (37, 53)
    assert np.allclose(upsample_mask(np.full((16, 16), 0.7, np.float32), frame), 0.7, atol=1e-3)


def test_threshold_shift_moves_the_half_point():
    prob = np.array([0.0, 0.3, 0.5, 1.0], np.float32)
    shifted = shift_threshold(prob, 0.3)
    assert shifted[1] == pytest.approx(0.5) and shifted[0] == 0 and shifted[3] == pytest.approx(1.0)
    assert np.array_equal(shift_threshold(prob, 0.5), prob)
    assert np.all(np.diff(shift_threshold(np.linspace(0, 1, 11), 0.8)) >= 0)  # order is kept


def test_temporal_smoother_is_an_ema_and_can_be_off():
    smoother = TemporalSmoother(0.5)
    assert smoother(np.ones(2))[0] == 1.0
    assert smoother(np.zeros(2))[0] == 0.5
    assert smoother(np.zeros(2))[0] == 0.25
    assert smoother(np.ones(3))[0] == 1.0  # a new frame size restarts the average
    off = TemporalSmoother(0.0)
    off(np.ones(2))
    assert off(np.zeros(2))[0] == 0.0


def test_motion_aware_smoothing_follows_moving_pixels_and_smooths_still_ones():
    frame = np.zeros((40, 40, 3), np.uint8)
    moved = frame.copy()
    moved[:, 20:] = 255  # the right half of the picture changed, the left half did not
    smoother = TemporalSmoother(0.5, motion_aware=True)
    smoother(np.zeros((8, 8), np.float32), frame)
    out = smoother(np.ones((8, 8), np.float32), moved)
    assert np.allclose(out[:, :3], 0.5)  # still: the plain average
    assert np.allclose(out[:, 5:], 1.0)  # moving: the new frame at once
    plain = TemporalSmoother(0.5)
    plain(np.zeros((8, 8), np.float32), frame)
    assert np.allclose(plain(np.ones((8, 8), np.float32), moved), 0.5)  # without motion-aware: the average everywhere


@pytest.mark.parametrize("strength", [-0.1, 1.0, 2.0])
def test_smoothing_out_of_range_is_a_user_error(strength):
    with pytest.raises(SegedgeError, match="smoothing"):
        TemporalSmoother(strength)
