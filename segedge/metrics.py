"""Per-image segmentation metrics on boolean masks (numpy and opencv, so `segedge eval` needs no torch).

Conventions: an image where both prediction and ground truth are empty scores 1 (nothing to find, nothing found),
boundary IoU included (only an empty mask has no boundary band: a full-frame one has it along the frame's edge);
one empty and the other not scores boundary IoU 0. Dataset figures are the mean over images,
as in MediaPipe's and the data README's reference numbers.
"""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np

METRIC_NAMES = ("iou", "miou", "dice", "pixel_accuracy", "boundary_iou")
BOUNDARY_RATIO = 0.02  # Boundary IoU's band width as a fraction of the image diagonal (Cheng et al., CVPR 2021)


def _ratio(numerator: float, denominator: float) -> float:
    return 1.0 if denominator == 0 else numerator / denominator


def boundary_width(shape: tuple[int, ...], ratio: float = BOUNDARY_RATIO) -> int:
    """Boundary IoU's d in pixels: `ratio` of the image diagonal, rounded, at least 1."""
    return max(1, round(ratio * math.hypot(shape[0], shape[1])))


def boundary_band(mask: np.ndarray, width: int) -> np.ndarray:
    """The mask's pixels within `width` of its contour: the mask minus its erosion by a (2 * width + 1) square.

    The mask is padded with one background pixel first, as the reference implementation does, so a mask cut by the
    frame's edge has a boundary there too."""
    padded = cv2.copyMakeBorder(mask.astype(np.uint8), 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)
    eroded = cv2.erode(padded, np.ones((2 * width + 1, 2 * width + 1), np.uint8))[1:-1, 1:-1]
    return mask & ~eroded.astype(bool)


def boundary_iou(pred: np.ndarray, target: np.ndarray, ratio: float = BOUNDARY_RATIO) -> float:
    """Boundary IoU (Cheng et al., CVPR 2021): IoU of the two masks' boundary bands, band width `ratio` of the
    image diagonal. 1 when neither mask has a band (both empty), 0 when only one has."""
    pred, target = np.asarray(pred, bool), np.asarray(target, bool)
    width = boundary_width(pred.shape, ratio)
    pred_band, target_band = boundary_band(pred, width), boundary_band(target, width)
    return _ratio(np.count_nonzero(pred_band & target_band), np.count_nonzero(pred_band | target_band))


def mask_metrics(pred: np.ndarray, target: np.ndarray) -> dict[str, float]:
    """Foreground IoU, mean IoU over person+background, Dice, pixel accuracy and boundary IoU of one image."""
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
        "boundary_iou": boundary_iou(pred, target),
    }


class MetricAverager:
    """Mean of per-image metrics."""

    def __init__(self) -> None:
        self.sums = dict.fromkeys(METRIC_NAMES, 0.0)
        self.count = 0

    def add(self, pred: np.ndarray, target: np.ndarray) -> dict[str, float]:
        return self.record(mask_metrics(pred, target))

    def record(self, scores: dict[str, float]) -> dict[str, float]:
        """Count one image's already computed scores."""
        for key, value in scores.items():
            self.sums[key] += value
        self.count += 1
        return scores

    def result(self) -> dict[str, float]:
        return {key: (total / self.count if self.count else float("nan")) for key, total in self.sums.items()}

    def summary(self, digits: int) -> dict[str, float | int]:
        """The means rounded to `digits`, with the image count."""
        return {**{key: round(value, digits) for key, value in self.result().items()}, "images": self.count}


def source_of(path: str | Path) -> str:
    """The source an image comes from: its file stem up to the first '_' (val/images/vik_0090.jpg -> vik), as the
    data folders name them; a stem without '_' is its own source."""
    return Path(path).stem.partition("_")[0]


class SourceAverager:
    """Mean of per-image metrics over all images and per source (source_of): one kind of image can fail while
    the folder's mean still looks fine (issue 19: vik_* 0.855 inside a val mean of 0.936)."""

    def __init__(self) -> None:
        self.overall = MetricAverager()
        self.sources: dict[str, MetricAverager] = {}

    def add(self, path: str | Path, pred: np.ndarray, target: np.ndarray) -> dict[str, float]:
        scores = self.overall.add(pred, target)
        return self.sources.setdefault(source_of(path), MetricAverager()).record(scores)

    def by_source(self, digits: int) -> dict[str, dict[str, float | int]]:
        return {source: averager.summary(digits) for source, averager in sorted(self.sources.items())}
