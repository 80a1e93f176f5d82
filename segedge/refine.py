"""Mask refinement: edge-aware upsampling from model resolution to the full frame, and temporal smoothing.

The fast guided filter (He & Sun, 2015) fits a local linear model q = a*I + b between the frame's luminance I and
the low-resolution probability p at model resolution, then upsamples only (a, b): edges follow the full-resolution
image instead of the blocky model grid, at the cost of a few box filters on a small image.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from segedge.errors import SegedgeError

DEFAULT_RADIUS = 2  # in model pixels: the window the linear model is fitted over
DEFAULT_EPS = 1e-2  # regularisation: smaller follows image edges closer but copies texture into the matte


def _box(image: np.ndarray, radius: int) -> np.ndarray:
    return cv2.boxFilter(image, -1, (2 * radius + 1, 2 * radius + 1), borderType=cv2.BORDER_REFLECT)


def _gray8(frame_rgb: np.ndarray, size: tuple[int, int] | None = None,
           interpolation: int = cv2.INTER_AREA) -> np.ndarray:
    """8-bit luminance, at `size` (width, height) if given."""
    gray = cv2.cvtColor(frame_rgb, cv2.COLOR_RGB2GRAY)
    if size is not None and size != gray.shape[::-1]:
        gray = cv2.resize(gray, size, interpolation=interpolation)
    return gray


def _luminance(frame_rgb: np.ndarray, size: tuple[int, int] | None = None) -> np.ndarray:
    """Luminance in [0, 1], at `size` (width, height) if given: scaled down in 8 bits first, so a full-resolution
    frame never goes through a float pass it does not need."""
    return _gray8(frame_rgb, size).astype(np.float32) / 255.0


def upsample_mask(prob: np.ndarray, frame_rgb: np.ndarray, radius: int = DEFAULT_RADIUS,
                  eps: float = DEFAULT_EPS) -> np.ndarray:
    """Low-resolution probabilities (h x w) -> float32 H x W matte guided by the full-resolution frame."""
    height, width = frame_rgb.shape[:2]
    guide = _luminance(frame_rgb)
    guide_low = _luminance(frame_rgb, (prob.shape[1], prob.shape[0]))
    prob = prob.astype(np.float32)
    mean_i, mean_p = _box(guide_low, radius), _box(prob, radius)
    var_i = _box(guide_low * guide_low, radius) - mean_i * mean_i
    cov_ip = _box(guide_low * prob, radius) - mean_i * mean_p
    a = cov_ip / (var_i + eps)
    b = mean_p - a * mean_i
    a_full = cv2.resize(_box(a, radius), (width, height), interpolation=cv2.INTER_LINEAR)
    b_full = cv2.resize(_box(b, radius), (width, height), interpolation=cv2.INTER_LINEAR)
    return np.clip(a_full * guide + b_full, 0.0, 1.0)


def refine_size(size: tuple[int, int], max_pixels: int | None) -> tuple[int, int]:
    """(height, width) to refine a frame of `size` at: scaled down, aspect kept, to at most `max_pixels`."""
    height, width = size
    scale = 1.0 if max_pixels is None else min(1.0, math.sqrt(max_pixels / (height * width)))
    return max(1, round(height * scale)), max(1, round(width * scale))


def resize_mask(prob: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Plain bilinear upsampling to (height, width), no image guidance (`segedge eval --no-refine`)."""
    height, width = size
    return cv2.resize(prob.astype(np.float32), (width, height), interpolation=cv2.INTER_LINEAR)


def upsample(prob: np.ndarray, frame_rgb: np.ndarray, guided: bool = True) -> np.ndarray:
    """Model-resolution probabilities -> the frame's size: guided by the frame (upsample_mask), else plain bilinear
    (resize_mask)."""
    return upsample_mask(prob, frame_rgb) if guided else resize_mask(prob, frame_rgb.shape[:2])


def shift_threshold(prob: np.ndarray, threshold: float) -> np.ndarray:
    """Remap probabilities so `threshold` becomes the matte's 50% point (identity at 0.5)."""
    if threshold == 0.5:
        return prob
    below = prob / (2 * threshold)
    above = 0.5 + (prob - threshold) / (2 * (1 - threshold))
    return np.where(prob < threshold, below, above).astype(np.float32)


MOTION_SCALE = 0.08  # luminance change (0..1) at which a pixel counts as fully moving: no smoothing there


class TemporalSmoother:
    """Exponential moving average of per-frame probabilities so mask edges do not flicker in video.

    strength 0 = off; 0.5 weights the previous estimate as much as the new frame. Plain EMA trails a moving arm by
    a frame or two; `motion_aware` (with the frame passed in) lowers the weight of the past where the frame itself
    changed, so still regions stay steady and moving ones follow at once.
    """

    def __init__(self, strength: float = 0.5, motion_aware: bool = False):
        if not 0.0 <= strength < 1.0:
            raise SegedgeError(f"smoothing strength {strength} must be in [0, 1); 0 turns smoothing off")
        self.strength, self.motion_aware = strength, motion_aware
        self.state: np.ndarray | None = None
        self.guide: np.ndarray | None = None  # the previous frame's luminance at model resolution

    def __call__(self, prob: np.ndarray, frame_rgb: np.ndarray | None = None) -> np.ndarray:
        weight = self._weight(prob, frame_rgb)
        if self.strength == 0 or self.state is None or self.state.shape != prob.shape:
            self.state = prob
        else:
            self.state = weight * self.state + (1 - weight) * prob
        return self.state

    def _weight(self, prob: np.ndarray, frame_rgb: np.ndarray | None) -> float | np.ndarray:
        """The weight of the past: `strength`, or per pixel strength * (1 - motion) when motion-aware."""
        if not self.motion_aware or frame_rgb is None or self.strength == 0:
            return self.strength
        guide = _luminance(frame_rgb, (prob.shape[1], prob.shape[0]))
        previous, self.guide = self.guide, guide
        if previous is None or previous.shape != guide.shape:
            return self.strength
        motion = np.clip(_box(np.abs(guide - previous), 1) / MOTION_SCALE, 0.0, 1.0)  # spread a pixel to its ring
        return (self.strength * (1.0 - motion)).astype(np.float32)


FLOW_SIDE = 160  # optical flow on at most 160x160 pixels: DIS ultrafast takes ~0.6 ms there, ~3.4 ms at 320x320
MIN_FLOW_SIDE = 16  # DIS needs 12 pixels; below that a matte is reused as it is


class MotionCompensation:
    """Carries the model's last output to the frames it skips (`--model-every N`): dense optical flow (DIS,
    ultrafast preset) from each skipped frame back to the model's frame, on small luminance images, and the
    probabilities sampled along it. Without it a skipped frame shows the person where they were when the model last
    looked. Always warped from the model's frame, never chained, so errors do not add up over the skipped frames."""

    def __init__(self):
        self.flow = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST)
        self.reference: np.ndarray | None = None  # the model frame's small luminance
        self.grid: tuple[np.ndarray, np.ndarray] | None = None

    @staticmethod
    def _small_gray(frame_rgb: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
        scale = min(1.0, FLOW_SIDE / max(shape))
        size = (max(MIN_FLOW_SIDE, round(shape[1] * scale)), max(MIN_FLOW_SIDE, round(shape[0] * scale)))
        # INTER_LINEAR: INTER_AREA to a non-integer ratio costs ~4 ms at 720p; the flow tolerates the aliasing
        return _gray8(frame_rgb, size, cv2.INTER_LINEAR)

    def keyframe(self, frame_rgb: np.ndarray, prob: np.ndarray) -> None:
        """The frame the model just saw, with its probabilities."""
        self.reference = self._small_gray(frame_rgb, prob.shape)

    def __call__(self, prob: np.ndarray, frame_rgb: np.ndarray) -> np.ndarray:
        """`prob` (the last keyframe's) moved to where `frame_rgb` shows things."""
        if self.reference is None or min(prob.shape) < MIN_FLOW_SIDE:
            return prob
        gray = self._small_gray(frame_rgb, prob.shape)
        if self.reference.shape != gray.shape:
            return prob
        flow = self.flow.calc(gray, self.reference, None)  # gray(x) ~ reference(x + flow(x)), in small pixels
        height, width = prob.shape
        if gray.shape != prob.shape:
            scale = np.array([width / gray.shape[1], height / gray.shape[0]], np.float32)
            flow = cv2.resize(flow, (width, height), interpolation=cv2.INTER_LINEAR) * scale
        if self.grid is None or self.grid[0].shape != prob.shape:
            ys, xs = np.indices(prob.shape, dtype=np.float32)
            self.grid = (xs, ys)
        xs, ys = self.grid
        return cv2.remap(prob, xs + flow[..., 0], ys + flow[..., 1], cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_REPLICATE)
