"""Webcam: live effect in a window (needs OpenCV with GUI support), or recorded to a video file with -o."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from segedge.effects import apply_effect
from segedge.errors import SegedgeError
from segedge.refine import TemporalSmoother

WINDOW = "segedge (q or Esc to quit)"


def _has_gui() -> bool:
    try:
        cv2.namedWindow(WINDOW)
        return True
    except cv2.error:
        return False


def open_camera(index: int) -> cv2.VideoCapture:
    capture = cv2.VideoCapture(index)
    if not capture.isOpened():
        raise SegedgeError(f"webcam {index} does not open: check the index (0, 1, ...) and that no other "
                           "program holds the camera")
    return capture


def run_webcam(segmenter, index: int, target: Path | None, effect: str, background, blur_strength: int,
               threshold: float | None, smooth: float) -> Path | None:
    """Until the stream ends or q/Esc: segment, smooth, composite; show and/or write with OpenCV."""
    if target is None and not _has_gui():
        raise SegedgeError("this OpenCV build has no window support (opencv-python-headless); "
                           "record instead with -o out.mp4")
    capture = open_camera(index)
    try:
        _loop(segmenter, capture, target, effect, background, blur_strength, threshold, TemporalSmoother(smooth))
    except KeyboardInterrupt:  # the normal way to end a recording: the file is closed properly below
        pass
    return target


def _loop(segmenter, capture, target, effect, background, blur_strength, threshold, smoother) -> None:
    writer = None
    try:
        while True:
            ok, bgr = capture.read()
            if not ok:
                break
            rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            prob = smoother(segmenter.probabilities([rgb])[0])
            image = apply_effect(rgb, segmenter.to_matte(prob, rgb, threshold), effect, background, blur_strength)
            shown = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR) if image.ndim == 2 else \
                cv2.cvtColor(image, cv2.COLOR_RGBA2BGR if image.shape[2] == 4 else cv2.COLOR_RGB2BGR)
            if target is not None:
                writer = writer or _open_writer(target, shown.shape, capture.get(cv2.CAP_PROP_FPS) or 30.0)
                writer.write(np.ascontiguousarray(shown))
            if target is None:
                cv2.imshow(WINDOW, shown)
                if cv2.waitKey(1) & 0xFF in (ord("q"), 27):
                    break
    finally:
        capture.release()
        if writer is not None:
            writer.release()
        if target is None:
            cv2.destroyAllWindows()


def _open_writer(target: Path, shape, fps: float) -> cv2.VideoWriter:
    writer = cv2.VideoWriter(str(target), cv2.VideoWriter_fourcc(*"mp4v"), fps, (shape[1], shape[0]))
    if not writer.isOpened():
        raise SegedgeError(f"cannot write video {target}")
    return writer
