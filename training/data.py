"""Image/mask pairs on disk -> augmented, normalised tensors.

Accepted layouts: DIR/{train,val}/{images,masks} (segedge's) and DIR/{train,test}/{image,mask} (the classic one).
Images .jpg/.jpeg/.png, masks .png (0/255 or 0/1), paired by file stem.
"""

from __future__ import annotations

import logging
import random
from pathlib import Path

import albumentations as A
import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from segedge.errors import SegedgeError
from segedge.pairs import find_pairs, read_pair
from segedge.preprocess import normalize

log = logging.getLogger("segedge.train")
SPLIT_NAMES = {"train": ("train",), "val": ("val", "test")}


def find_split(root: Path, split: str) -> Path | None:
    """The folder of one split inside a data root, in either accepted layout (None when absent)."""
    for name in SPLIT_NAMES[split]:
        if (root / name).is_dir():
            return root / name
    return None


def train_transform(size: int, crop: int) -> A.Compose:
    """Resize to the inference size (so object scale matches inference), then scale jitter and a random crop."""
    return A.Compose([
        A.Resize(size, size, interpolation=cv2.INTER_AREA),
        A.HorizontalFlip(),
        A.Affine(scale=(0.7, 1.3), rotate=(-10, 10), border_mode=cv2.BORDER_REFLECT_101, p=0.7),
        A.RandomCrop(crop, crop) if crop < size else A.NoOp(),
        A.ColorJitter(brightness=0.3, contrast=0.3, saturation=0.3, hue=0.03, p=0.8),
        A.ToGray(p=0.05),
        A.OneOf([A.GaussianBlur(blur_limit=(3, 5)), A.MotionBlur(blur_limit=(3, 5))], p=0.15),
    ])


class SegmentationDataset(Dataset):
    """Pairs -> (normalised float CHW image, float 1HW mask). Unreadable pairs are skipped with a warning.

    With `mattes` (a teacher's cached soft mattes, see distill.py) each item also carries the float 1HW teacher
    probability, sent through the same geometric augmentations as the mask.
    """

    def __init__(self, pairs, size: int, mean, std, crop: int | None = None, train: bool = False,
                 mattes: Path | None = None):
        self.pairs = list(pairs)
        self.mean, self.std = mean, std
        self.mattes = mattes
        resize = A.Compose([A.Resize(size, size, interpolation=cv2.INTER_AREA)])
        self.transform = train_transform(size, crop or size) if train else resize
        self.bad: set[int] = set()

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int):
        while True:
            try:
                image, mask = read_pair(*self.pairs[index])
                break
            except SegedgeError as exc:  # never crash mid-epoch: warn once, take another pair
                if index not in self.bad:
                    log.warning("%s; skipped", exc)
                    self.bad.add(index)
                if len(self.bad) == len(self.pairs):
                    raise
                index = random.randrange(len(self.pairs))
        mask = mask.astype(np.uint8)  # albumentations wants numbers; the reader gives booleans
        if self.mattes is None:
            out = self.transform(image=image, mask=mask)
            image = normalize(out["image"], self.mean, self.std)
            return torch.from_numpy(image), torch.from_numpy(out["mask"][None].astype(np.float32))
        from segedge.training.distill import read_matte

        matte = read_matte(self.mattes, self.pairs[index][0], mask.shape)
        out = self.transform(image=image, masks=[mask, matte])
        mask, matte = out["masks"]
        image = normalize(out["image"], self.mean, self.std)
        return (torch.from_numpy(image), torch.from_numpy(np.asarray(mask)[None].astype(np.float32)),
                torch.from_numpy(np.asarray(matte)[None].astype(np.float32) / 255.0))


__all__ = ["SegmentationDataset", "find_pairs", "find_split", "read_pair", "train_transform"]
