"""Image/mask pairs on disk, shared by training (torch side), `segedge eval`, bench and export (torch-free).

The one reader of ground truth: images through segedge.media.read_image (RGB uint8, EXIF-turned), masks through
read_mask (a pixel is person above half of 255: 0/255 masks, soft 0-255 mattes cut at 128, and 0/1 masks).
"""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np

from segedge.errors import SegedgeError
from segedge.media import IMAGE_EXTENSIONS, read_image

log = logging.getLogger("segedge")
FOLDER_NAMES = (("images", "masks"), ("image", "mask"))


def find_pairs(folder: str | Path) -> list[tuple[Path, Path]]:
    """(image, mask) pairs of a folder holding images/ + masks/ (or image/ + mask/), paired by file stem.

    Unpaired files are reported by name and left out; a folder without any pair is an error.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise SegedgeError(f"data folder not found: {folder}")
    for image_dir_name, mask_dir_name in FOLDER_NAMES:
        image_dir, mask_dir = folder / image_dir_name, folder / mask_dir_name
        if image_dir.is_dir() and mask_dir.is_dir():
            break
    else:
        raise SegedgeError(f"{folder} has no images/ and masks/ folders (or image/ and mask/)")
    images = {p.stem: p for p in sorted(image_dir.iterdir()) if p.suffix.lower() in IMAGE_EXTENSIONS}
    masks = {p.stem: p for p in sorted(mask_dir.iterdir()) if p.suffix.lower() == ".png"}
    for stem in sorted(images.keys() - masks.keys()):
        log.warning("no mask for image %s; skipped", images[stem])
    for stem in sorted(masks.keys() - images.keys()):
        log.warning("no image for mask %s; skipped", masks[stem])
    pairs = [(images[s], masks[s]) for s in sorted(images.keys() & masks.keys())]
    if not pairs:
        raise SegedgeError(f"{folder}: no image/mask pairs found (images .jpg/.png and masks .png with the same name)")
    return pairs


MASK_THRESHOLD = 127  # 0-255 masks: person above it; masks holding only 0/1 are read as they are


def read_mask(path: str | Path) -> np.ndarray:
    """Boolean person mask from a PNG holding 0/255 (soft values count as person above 127) or 0/1."""
    mask = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if mask is None:
        raise SegedgeError(f"cannot read mask {path}")
    return mask > (MASK_THRESHOLD if mask.max() > 1 else 0)


def read_pair(image_path: str | Path, mask_path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """RGB uint8 image and boolean mask of the same size; SegedgeError naming the file otherwise."""
    image, mask = read_image(image_path), read_mask(mask_path)
    if image.shape[:2] != mask.shape:
        raise SegedgeError(f"size mismatch: image {image_path} is {image.shape[1]}x{image.shape[0]}, "
                           f"mask {mask_path} is {mask.shape[1]}x{mask.shape[0]}")
    return image, mask
