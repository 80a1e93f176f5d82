"""Per-image segmentation metrics on boolean masks (numpy only, so `segedge eval` needs no torch).

Conventions: an image where both prediction and ground truth are empty scores 1 (nothing to find, nothing found).
Dataset figures are the mean over images, as in MediaPipe's and the data README's reference numbers.
"""

from __future__ import annotations

import numpy as np

METRIC_NAMES = ("iou", "miou", "dice", "pixel_accuracy")


def _ratio(numerator: float, denominator: float) -> float:
    return 1.0 if denominator == 0 else numerator / denominator


def mask_metrics(pred: np.ndarray, target: np.ndarray) -> dict[str, float]:
    """Foreground IoU, mean IoU over person+background, Dice and pixel accuracy of one image."""
    pred, target = np.asarray(pred, bool), np.asarray(target, bool)
    if pred.shape != target.shape:
        raise ValueError(f"prediction {pred.shape} and ground truth {target.shape} differ in size")
    tp = np.count_nonzero(pred & target)
    fp = np.count_nonzero(pred & ~target)
    fn = np.count_nonzero(~pred & target)
    tn = pred.size - tp - fp - fn
    iou = _ratio(tp, tp + fp + fn)
    background_iou = _ratio(tn, tn + fp + fn)
    return {
        "iou": iou,
        "miou": (iou + background_iou) / 2,
        "dice": _ratio(2 * tp, 2 * tp + fp + fn),
        "pixel_accuracy": (tp + tn) / pred.size,
    }


class MetricAverager:
    """Mean of per-image metrics."""

    def __init__(self) -> None:
        self.sums = dict.fromkeys(METRIC_NAMES, 0.0)
        self.count = 0

    def add(self, pred: np.ndarray, target: np.ndarray) -> dict[str, float]:
        scores = mask_metrics(pred, target)
        for key, value in scores.items():
            self.sums[key] += value
        self.count += 1
        return scores

    def result(self) -> dict[str, float]:
        return {key: (total / self.count if self.count else float("nan")) for key, total in self.sums.items()}
