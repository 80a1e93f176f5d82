"""Webcam: live effect in a window (needs OpenCV with GUI support), or recorded to a video file with -o.

Recordings carry wall-clock timestamps, so they play at real speed even when the model runs slower than the
camera, and they are written atomically: q, Esc or Ctrl-C end them cleanly; an error leaves no file behind.
"""

from __future__ import annotations

from pathlib import Path

import cv2

from segedge.effects import Effect
from segedge.errors import SegedgeError
from segedge.media import VIDEO_EXTENSIONS
from segedge.stream import Camera, VideoWriter, Window, stream


def run_webcam(segmenter, index: int, target: Path | None, effect: Effect | None = None,
               threshold: float | None = None, smooth: float = 0.5, quiet: bool = True) -> Path | None:
    """Until the stream ends or q/Esc/Ctrl-C: segment, smooth, composite; show in a window or record."""
    if target is not None and target.suffix.lower() not in VIDEO_EXTENSIONS:
        raise SegedgeError(f"{target}: record a webcam to a video file ({', '.join(VIDEO_EXTENSIONS)})")
    if target is None:  # the window first: no camera is opened when there is nowhere to show it
        with Window() as window, Camera.open(index) as camera:
            stream(camera, segmenter, window, effect, threshold, smooth, quiet=quiet)
        return None
    return stream_capture(segmenter, Camera.open(index).capture, target, effect, threshold, smooth, quiet)


def stream_capture(segmenter, capture: cv2.VideoCapture, target: Path, effect: Effect | str | None = None,
                   threshold: float | None = None, smooth: float = 0.5, quiet: bool = True) -> Path:
    """Every frame of an open capture (camera, or any source OpenCV opens) recorded to `target`."""
    with Camera(capture) as camera, VideoWriter(target, camera.rate, camera.time_base, live=True) as recorder:
        stream(camera, segmenter, recorder, effect, threshold, smooth, quiet=quiet)
        if recorder.frames == 0:
            raise SegedgeError("the webcam gave no frames; nothing was recorded")
    return target
