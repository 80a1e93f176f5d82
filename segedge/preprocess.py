"""Pre-processing shared by training, export and the runtime, so all three feed a model the same tensor."""

from __future__ import annotations

import cv2
import numpy as np

from segedge.spec import ModelSpec


def normalize(rgb: np.ndarray, mean, std) -> np.ndarray:
    """uint8 HxWx3 RGB -> float32 3xHxW, scaled to [0, 1] then standardised per channel."""
    scale = np.float32(1.0 / 255.0)
    mean = np.asarray(mean, np.float32)[:, None, None]
    inv_std = (1.0 / np.asarray(std, np.float32))[:, None, None]
    return (rgb.transpose(2, 0, 1).astype(np.float32) * scale - mean) * inv_std


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
