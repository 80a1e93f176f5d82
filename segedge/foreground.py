"""The person's own colour in a matte's soft edge: Forte & Pitié, "Approximate Fast Foreground Colour Estimation"
(ICIP 2021), the blur-fusion estimator.

An edge pixel mixes the person's colour F with the old background's B: I = alpha * F + (1 - alpha) * B. Composited
as it is over a new background, I keeps the old background's share: a pale or coloured halo. Blur fusion estimates
F from local means: the alpha-weighted box mean of the image around a pixel stands for F, the (1 - alpha)-weighted
mean for B, and what of I these means do not explain goes back to F. A large box first (it reaches past a wide
edge to both sides' colours), then a small one seeded with the first pass's F and B (local colour detail).

Only the soft band (0 < alpha < 1 at 8 bits, what the composite blends) needs F. To stay real-time the box means,
smooth by nature, run on a shrunk copy (about WORK_SIDE px on the shorter side; the large pass on a smaller one
still), and only the paper's last per-pixel step, which brings back full-resolution detail, runs at full size, on
the band's pixels alone. `estimate_foreground_reference` is the paper's method as published, for comparison
(benchmarks/edge_colour.py measures both).
"""

from __future__ import annotations

import cv2
import numpy as np

LARGE_KERNEL, SMALL_KERNEL = 90, 6  # the paper's box sizes, for a frame whose shorter side is REFERENCE_SIDE
REFERENCE_SIDE = 1080
WORK_SIDE = 180  # the box means run on a copy shrunk by a whole factor towards this shorter side
LARGE_BOX_SHRUNK = 12  # ... and the large pass on a copy shrunk further, to a box of about this many pixels
EPS = 1e-5
# Estimate F only where alpha is within BAND_MARGIN/255 of neither 0 nor 1: elsewhere the composite's change,
# alpha * |F - I| = alpha * (1 - alpha) * |F - B|, stays under 1.6% of the colour contrast (4 levels at the most),
# and skipping those pixels halves the per-pixel work on a model's matte (its soft zone has long tails).
BAND_MARGIN = 4
SAMPLE_ROW = 4096
PIXEL = np.dtype((np.void, 3))  # an RGB pixel as one item: np.take/np.put on it beat N x 3 fancy indexing 3-6x


def soft_band(alpha8: np.ndarray, margin: int = 0) -> np.ndarray:
    """Where the 8-bit matte is neither 0 nor 255 (the pixels a composite blends), or `margin` levels further in."""
    return (alpha8 > margin) & (alpha8 < 255 - margin)


def kernel_sizes(shape: tuple[int, ...]) -> tuple[int, int]:
    """The paper's two box sizes scaled to the frame: (90, 6) at 1080 px on the shorter side, (60, 4) at 720."""
    scale = min(shape[:2]) / REFERENCE_SIDE
    return max(3, round(LARGE_KERNEL * scale)), max(3, round(SMALL_KERNEL * scale))


def _box(image: np.ndarray, size: int) -> np.ndarray:
    return cv2.blur(image, (size, size), borderType=cv2.BORDER_REPLICATE)


def _shrink(image: np.ndarray, factor: int) -> np.ndarray:
    height, width = image.shape[:2]
    return cv2.resize(image, (max(1, width // factor), max(1, height // factor)), interpolation=cv2.INTER_AREA)


def fusion_step(image, fg, bg, alpha, size: int):
    """One pass of blur fusion on float32 H x W x 3 arrays (alpha repeated over the 3 channels): the estimated
    foreground F and the background's box mean. F = mean F + alpha * (I - alpha * mean F - (1 - alpha) * mean B)."""
    mean_fg, mean_bg = box_means(fg * alpha, bg * (1 - alpha), alpha, size)
    return np.clip(mean_fg + alpha * (image - alpha * mean_fg - (1 - alpha) * mean_bg), 0, 255), mean_bg


def box_means(weighted_fg, weighted_bg, alpha, size: int):
    """Alpha-weighted box means of the foreground and (1 - alpha)-weighted ones of the background."""
    mean_alpha = _box(alpha, size)
    return _box(weighted_fg, size) / (mean_alpha + EPS), _box(weighted_bg, size) / (1 - mean_alpha + EPS)


def estimate_foreground_reference(frame: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """The paper's two passes at full resolution over the whole frame (float32): the yardstick for the fast path."""
    image = frame.astype(np.float32)
    alpha = cv2.merge([np.asarray(alpha, np.float32)] * 3)
    large, small = kernel_sizes(frame.shape)
    fg, mean_bg = fusion_step(image, image, image, alpha, large)
    return fusion_step(image, fg, mean_bg, alpha, small)[0]


def large_pass_means(image: np.ndarray, alpha: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """The first pass's box means of foreground and background (F = B = the image), on a copy shrunk until the box
    is about LARGE_BOX_SHRUNK px (a wide mean has no detail a small copy loses), brought back to the image's size."""
    factor = max(1, round(size / LARGE_BOX_SHRUNK))
    shrunk = [_shrink(x, factor) for x in (image * alpha, image * (1 - alpha), alpha)]
    means = box_means(*shrunk, max(1, round(size / factor)))
    return [cv2.resize(m, image.shape[1::-1], interpolation=cv2.INTER_LINEAR) for m in means]


def band_means(frame: np.ndarray, alpha8: np.ndarray, factor: int) -> tuple[np.ndarray, np.ndarray]:
    """The second pass's box means of foreground and background on a copy `factor` times smaller: the paper's two
    passes except the last per-pixel step."""
    large, small = (max(1, round(k / factor)) for k in kernel_sizes(frame.shape))
    image = _shrink(frame, factor).astype(np.float32)
    alpha = cv2.merge([_shrink(alpha8, factor).astype(np.float32) / 255] * 3)  # same shape: numpy broadcasts a
    mean_fg, mean_bg = large_pass_means(image, alpha, large)                   # last axis of 1 slowly
    fg = np.clip(mean_fg + alpha * (image - alpha * mean_fg - (1 - alpha) * mean_bg), 0, 255)
    return box_means(fg * alpha, mean_bg * (1 - alpha), alpha, small)


def _sample(image: np.ndarray, rows: np.ndarray, cols: np.ndarray, factor: int) -> np.ndarray:
    """Bilinear samples (N x channels) of a copy `factor` times smaller at full-resolution pixel positions
    (cv2.remap, whose maps must be under 32767 wide: the N positions go in rows of SAMPLE_ROW)."""
    def grid(positions: np.ndarray) -> np.ndarray:
        flat = ((positions + 0.5) / factor - 0.5).astype(np.float32)
        return np.pad(flat, (0, -flat.size % SAMPLE_ROW)).reshape(-1, SAMPLE_ROW)

    samples = cv2.remap(image, grid(cols), grid(rows), cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return samples.reshape(-1, image.shape[2])[:rows.size]


def estimate_foreground(frame: np.ndarray, alpha8: np.ndarray) -> np.ndarray:
    """RGB uint8 frame with its soft-band pixels replaced by the estimated foreground colour; the same array when
    the matte has no soft band. alpha8: the uint8 matte the composite uses.

    The box means run on a shrunk copy (about WORK_SIDE px on the shorter side); only the last per-pixel step,
    which brings back the full-resolution detail, runs at full size, and only on the band's pixels (see the
    module's notes; BAND_MARGIN)."""
    band = np.flatnonzero(soft_band(alpha8, BAND_MARGIN))
    if band.size == 0:
        return frame
    frame = np.ascontiguousarray(frame)
    factor = max(1, min(frame.shape[:2]) // WORK_SIDE)
    rows, cols = np.divmod(band, frame.shape[1])
    means = _sample(np.concatenate(band_means(frame, alpha8, factor), axis=2), rows, cols, factor)  # one remap
    mean_fg, mean_bg = means[:, :3], means[:, 3:]
    image = np.take(frame.reshape(-1).view(PIXEL), band).view(np.uint8).reshape(-1, 3).astype(np.float32)
    alpha = np.repeat(np.take(alpha8.reshape(-1), band).astype(np.float32)[:, None] / 255, 3, axis=1)
    fg = mean_fg + alpha * (image - alpha * mean_fg - (1 - alpha) * mean_bg)
    out = frame.copy()
    np.put(out.reshape(-1).view(PIXEL), band, np.clip(fg + 0.5, 0, 255).astype(np.uint8).view(PIXEL))
    return out
