"""Where export finds real images: --calib DIR, else the data recorded in the checkpoint's spec, else generated."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from segedge.errors import SegedgeError
from segedge.media import IMAGE_EXTENSIONS
from segedge.pairs import read_mask
from segedge.spec import ModelSpec

PARITY_IMAGES = 8  # enough to catch a wrong op or layout; few enough to keep export quick on a CPU
CALIB_IMAGES = 32  # ORT's MinMax calibration settles after a few dozen representative images
VAL_SPLITS = ("val", "test")


def image_files(folder: Path) -> list[Path]:
    """Images of DIR/images, DIR/image or DIR itself, sorted by name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise SegedgeError(f"image folder not found: {folder}")
    for candidate in (folder / "images", folder / "image", folder):
        files = sorted(p for p in candidate.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS) if \
            candidate.is_dir() else []
        if files:
            return files
    raise SegedgeError(f"{folder} holds no images ({', '.join(IMAGE_EXTENSIONS)}) in it or in images/")


def sample(paths: list[Path], count: int) -> list[Path]:
    """`count` paths spread evenly over the sorted list (deterministic, covers the whole folder)."""
    if len(paths) <= count:
        return list(paths)
    return [paths[i] for i in np.linspace(0, len(paths) - 1, count).round().astype(int)]


def read_truth(image_path: Path, size: tuple[int, int]) -> np.ndarray | None:
    """The ground-truth mask beside an image (../masks/STEM.png or ../mask/STEM.png) read as segedge.pairs reads
    masks, or None when there is none, it cannot be read or it is not of the image's (height, width)."""
    for folder in ("masks", "mask"):
        path = image_path.parent.parent / folder / f"{image_path.stem}.png"
        if path.is_file():
            try:
                mask = read_mask(path)
            except SegedgeError:
                return None
            return mask if mask.shape == tuple(size) else None
    return None


def recorded_folder(spec: ModelSpec, split: str) -> Path | None:
    """The train folder recorded at training time, or its val/test sibling, when still on disk."""
    data = spec.training.get("data")
    if not data:
        return None
    train = Path(data)
    candidates = [train] if split == "train" else [train.parent / name for name in VAL_SPLITS]
    return next((c for c in candidates if c.is_dir()), None)


def parity_files(spec: ModelSpec, calib: Path | None) -> tuple[list[Path], str]:
    """Real images for the parity check and where they came from; empty when none is known."""
    folder = calib or recorded_folder(spec, "val")
    if folder is None:
        return [], "generated"
    return sample(image_files(folder), PARITY_IMAGES), str(folder)


def calibration_files(spec: ModelSpec, calib: Path | None, checkpoint: Path) -> list[Path]:
    folder = calib or recorded_folder(spec, "train")
    if folder is None:
        raise SegedgeError(f"INT8 needs calibration images: pass --calib DIR (the training data recorded in "
                           f"{checkpoint} is not on this machine)")
    return sample(image_files(folder), CALIB_IMAGES)


def generated_images(count: int, size: tuple[int, int], seed: int = 0) -> list[np.ndarray]:
    """Smooth random scenes with a bright ellipse: a last resort when no real image is at hand."""
    rng = np.random.default_rng(seed)
    height, width = size
    images = []
    for _ in range(count):
        low = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
        image = cv2.resize(low, (width, height), interpolation=cv2.INTER_CUBIC)
        center = (int(rng.integers(width // 4, 3 * width // 4)), int(rng.integers(height // 4, 3 * height // 4)))
        axes = (max(2, width // 6), max(2, height // 3))
        cv2.ellipse(image, center, axes, 0, 0, 360, tuple(int(v) for v in rng.integers(0, 256, 3)), -1)
        images.append(image)
    return images
