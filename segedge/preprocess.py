"""Pre-processing shared by training, export and the runtime, so all three feed a model the same tensor."""

from __future__ import annotations

import cv2
import numpy as np

from segedge.spec import ModelSpec


def normalize(rgb: np.ndarray, mean, std) -> np.ndarray:
    """uint8 HxWx3 RGB -> float32 3xHxW, scaled to [0, 1] then standardised per channel.

    One strided uint8->float32 copy per channel, then the affine map in place: ~10x faster than a float transpose
    and three array-wide passes, which mattered in the video pipeline.
    """
    scale = (1.0 / (255.0 * np.asarray(std, np.float32)))[:, None, None]
    offset = (-np.asarray(mean, np.float32) / np.asarray(std, np.float32))[:, None, None]
    out = np.empty((3, *rgb.shape[:2]), np.float32)
    for channel in range(3):
        out[channel] = rgb[..., channel]
    out *= scale
    out += offset
    return out


def to_model_input(rgb: np.ndarray, spec: ModelSpec, size: tuple[int, int] | None = None) -> np.ndarray:
    """uint8 RGB frame of any size -> float32 1x3xHxW tensor at the model's input size."""
    height, width = size or spec.input_size
    resized = cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA if rgb.shape[0] > height else
                         cv2.INTER_LINEAR)
    return normalize(resized, spec.mean, spec.std)[None]


def sigmoid(logits: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(logits, -30.0, 30.0)))


def to_probabilities(output: np.ndarray, spec: ModelSpec) -> np.ndarray:
    """Model output -> person probabilities, whichever output kind the spec declares."""
    return output if spec.output == "probabilities" else sigmoid(output)
