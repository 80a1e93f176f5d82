"""The one scoring path: model output -> person mask at the image's own size -> metrics against ground truth.

`segedge eval`, bench's accuracy columns, training validation and export parity all score through here, so their
figures agree. An output becomes probabilities as the model's spec says (`output`: logits go through a sigmoid,
probabilities are taken as they are), is upsampled to the image's size (the ground truth is never resized) either
guided by the image (what `segedge run` outputs and `segedge eval` scores by default) or plain bilinear (`segedge
eval --no-refine`, the training log and bench's accuracy columns), and is thresholded at the model's threshold.
Dataset figures are means over images: each image counts once, whatever its size (segedge.metrics).
"""

from __future__ import annotations

import numpy as np

from segedge.metrics import MetricAverager
from segedge.preprocess import to_probabilities
from segedge.refine import upsample
from segedge.spec import ModelSpec


def upsampling_name(guided: bool) -> str:
    return "guided" if guided else "bilinear"


def image_mask(prob: np.ndarray, image: np.ndarray, guided: bool, threshold: float) -> np.ndarray:
    """Model-resolution probabilities (h x w) -> boolean person mask at the size of `image` (H x W x 3)."""
    return upsample(prob, image, guided) > threshold


def person_mask(output: np.ndarray, spec: ModelSpec, image: np.ndarray, guided: bool) -> np.ndarray:
    """One image's model output (h x w, logits or probabilities as `spec.output` says) -> boolean person mask at
    the image's size, thresholded at the model's threshold."""
    return image_mask(to_probabilities(output, spec), image, guided, spec.threshold)


def mean_scores(predictions: list[np.ndarray], truths: list[np.ndarray]) -> dict[str, float]:
    """Foreground IoU, mIoU, Dice, pixel accuracy and boundary IoU, each the mean over images (NaN for no image)."""
    scores = MetricAverager()
    for prediction, truth in zip(predictions, truths, strict=True):
        scores.add(prediction, truth)
    return scores.result()


def mean_iou(predictions: list[np.ndarray], truths: list[np.ndarray]) -> float:
    """Foreground IoU, the mean over images (NaN for no image)."""
    return mean_scores(predictions, truths)["iou"]
