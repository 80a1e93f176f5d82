"""Distillation targets: a teacher model's soft mattes for the training images, computed once and cached.

The teacher is any model segedge runs (default.onnx, an .onnx/.pth file); its person probabilities are bilinearly
resized to each image's own size and stored as 8-bit grey PNGs, so the data pipeline sends them through exactly the
augmentations of the ground-truth mask. The cache folder is named after the teacher file's content, so a changed
teacher never reuses stale mattes; an interrupted precompute resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import logging
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from segedge.backends import load_backend
from segedge.errors import SegedgeError
from segedge.media import write_image
from segedge.preprocess import to_model_input, to_probabilities
from segedge.refine import resize_mask

log = logging.getLogger("segedge.train")


def teacher_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()[:12]


def matte_path(cache: Path, image_path: Path) -> Path:
    return cache / f"{image_path.stem}.png"


def cache_teacher_mattes(teacher: Path, pairs, cache_root: Path, threads: int | None = None,
                         quiet: bool = False) -> Path:
    """Cache TEACHER's soft matte of every training image in cache_root/<teacher-name>-<sha>/; returns it."""
    teacher = Path(teacher)
    if not teacher.is_file():
        raise SegedgeError(f"teacher model not found: {teacher}")
    cache = Path(cache_root) / f"{teacher.stem}-{teacher_digest(teacher)}"
    images = list(dict.fromkeys(image for image, _ in pairs))  # oversampling repeats pairs
    todo = [image for image in images if not matte_path(cache, image).is_file()]
    if not todo:
        return cache
    stems = [image.stem for image in images]
    if len(set(stems)) != len(stems):
        raise SegedgeError("training image names must be unique (by stem) to cache teacher mattes")
    cache.mkdir(parents=True, exist_ok=True)
    backend = load_backend(teacher, "cpu", threads=threads)
    log.info("teacher %s: soft mattes for %d of %d training images -> %s", teacher, len(todo), len(images), cache)
    for image_path in tqdm(todo, desc="teacher mattes", disable=quiet, unit="image"):
        bgr = cv2.imread(str(image_path), cv2.IMREAD_COLOR)
        if bgr is None:
            continue  # the dataset warns about unreadable images and skips them
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        output = backend.infer(to_model_input(rgb, backend.spec))[0, 0]
        prob = resize_mask(to_probabilities(output, backend.spec), rgb.shape[:2])
        matte = np.clip(prob * 255.0 + 0.5, 0, 255).astype(np.uint8)
        write_image(matte_path(cache, image_path), matte)  # atomic: a stopped run leaves no half-written PNG
    return cache


def cache_teacher_mattes_isolated(teacher: Path, pairs, cache_root: Path, threads: int | None = None,
                                  quiet: bool = False) -> Path:
    """cache_teacher_mattes in a spawned process, so the trainer never starts onnxruntime's or OpenCV's thread
    pools itself: data-loader workers forked after that hung on their first image."""
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(cache_teacher_mattes, teacher, list(pairs), cache_root, threads, quiet).result()


def read_matte(cache: Path, image_path: Path, shape: tuple[int, int]) -> np.ndarray:
    """The cached uint8 matte of one image (0..255), at the image's size."""
    matte = cv2.imread(str(matte_path(cache, image_path)), cv2.IMREAD_GRAYSCALE)
    if matte is None:
        raise SegedgeError(f"teacher matte missing for {image_path} in {cache}")
    if matte.shape != shape:
        matte = cv2.resize(matte, (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR)
    return matte
