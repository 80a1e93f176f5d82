"""Bench's accuracy columns: real images and masks, scored through segedge.scoring."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from segedge.bench.options import BenchOptions
from segedge.preprocess import to_model_input
from segedge.scoring import mean_iou, person_mask, upsampling_name

ACCURACY_IMAGES = 16
ACCURACY_GUIDED = False  # bilinear upsampling, as `segedge eval --no-refine` and the training log: the published
# IoU/GT figures are bilinear; `segedge eval` (guided by default) scores the matte `segedge run` outputs


def accuracy_folder(options: BenchOptions, spec) -> Path | None:
    """--data, else the val folder recorded in the model's spec when it is on this machine, else none."""
    if options.data is not None:
        return options.data
    train = spec.training.get("data")
    if not train:
        return None
    return next((folder for folder in (Path(train).parent / "val", Path(train).parent / "test")
                 if folder.is_dir()), None)


class AccuracySet:
    """Real images and their masks for the accuracy columns, picked evenly over the folder and read once."""

    def __init__(self, options: BenchOptions, echo: Callable[[str], None]):
        self.options, self.echo = options, echo
        self.folder: Path | None = None
        self.images: list[np.ndarray] | None = None
        self.truths: list[np.ndarray] = []

    def load(self, spec) -> tuple[list[np.ndarray], list[np.ndarray]]:
        if self.images is None:
            from segedge.pairs import find_pairs, read_pair

            self.folder = accuracy_folder(self.options, spec)
            self.images = []
            if self.folder is None:
                self.echo("no real images for the accuracy columns (pass --data DIR with images/ + masks/)")
                return self.images, self.truths
            pairs = find_pairs(self.folder)
            picked = [pairs[i] for i in np.linspace(0, len(pairs) - 1, min(ACCURACY_IMAGES, len(pairs))).astype(int)]
            read = [read_pair(image, mask) for image, mask in picked]
            self.images, self.truths = [image for image, _ in read], [mask for _, mask in read]
            self.echo(f"accuracy on {len(picked)} images of {self.folder} ({upsampling_name(ACCURACY_GUIDED)} "
                      f"upsampling, as `segedge eval --no-refine` scores)")
        return self.images, self.truths


def image_masks(backend, images, size) -> list[np.ndarray]:
    """Masks at each image's own size through segedge.scoring: upsampled bilinearly (ACCURACY_GUIDED), exactly as
    `segedge eval --no-refine` and the training log score."""
    return [person_mask(backend.infer(to_model_input(image, backend.spec, size))[0, 0], backend.spec, image,
                        ACCURACY_GUIDED) for image in images]


def rounded_iou(predictions, targets) -> float | None:
    return round(float(mean_iou(predictions, targets)), 4) if targets else None
