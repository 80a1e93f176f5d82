"""Webcam: live effect in a window (needs OpenCV with GUI support), or recorded to a video file with -o.

Recordings carry wall-clock timestamps, so they play at real speed even when the model runs slower than the
camera, and they are written atomically: q, Esc or Ctrl-C end them cleanly; an error leaves no file behind.
"""

from __future__ import annotations

import time
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

from segedge.effects import DEFAULT_BLUR, apply_effect
from segedge.errors import SegedgeError
from segedge.media import VIDEO_EXTENSIONS, atomic_output
from segedge.refine import TemporalSmoother

WINDOW = "segedge (q or Esc to quit)"
MILLISECOND = Fraction(1, 1000)


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
    """Until the stream ends or q/Esc/Ctrl-C: segment, smooth, composite; show in a window or record."""
    if target is None and not _has_gui():
        raise SegedgeError("this OpenCV build has no window support (opencv-python-headless); "
                           "record instead with -o out.mp4")
    if target is not None and target.suffix.lower() not in VIDEO_EXTENSIONS:
        raise SegedgeError(f"{target}: record a webcam to a video file ({', '.join(VIDEO_EXTENSIONS)})")
    return stream_capture(segmenter, open_camera(index), target, effect, background, blur_strength, threshold,
                          smooth)


def stream_capture(segmenter, capture: cv2.VideoCapture, target: Path | None, effect: str = "blur",
                   background=None, blur_strength: int = DEFAULT_BLUR, threshold: float | None = None,
                   smooth: float = 0.5) -> Path | None:
    """Every frame of an open capture (camera, or any source OpenCV opens) shown, or recorded to `target`."""
    smoother = TemporalSmoother(smooth)
    try:
        if target is None:
            _loop(segmenter, capture, None, effect, background, blur_strength, threshold, smoother)
            return None
        with atomic_output(target) as tmp:
            recorder = _Recorder(tmp, target.suffix.lower())
            try:
                _loop(segmenter, capture, recorder, effect, background, blur_strength, threshold, smoother)
            finally:
                recorder.close()
            if recorder.frames == 0:
                raise SegedgeError("the webcam gave no frames; nothing was recorded")
        return target
    finally:
        capture.release()


def _loop(segmenter, capture, recorder, effect, background, blur_strength, threshold, smoother) -> None:
    try:
        while True:
            ok, bgr = capture.read()
            if not ok:
                break
            rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            prob = smoother(segmenter.probabilities([rgb])[0])
            image = apply_effect(rgb, segmenter.to_matte(prob, rgb, threshold), effect, background, blur_strength)
            if image.ndim == 2:
                image = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
            elif image.shape[2] == 4:  # no alpha on screen or in a webcam recording: drop it
                image = np.ascontiguousarray(image[..., :3])
            if recorder is not None:
                recorder.write(image)
                continue
            cv2.imshow(WINDOW, cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
            if cv2.waitKey(1) & 0xFF in (ord("q"), 27):
                break
    except KeyboardInterrupt:  # the normal way to end a recording: the file is finished and renamed
        pass
    finally:
        if recorder is None:
            cv2.destroyAllWindows()


class _Recorder:
    """PyAV encoder with wall-clock timestamps (AVI, which has no timestamps, gets the nominal 30 frames/s)."""

    def __init__(self, path: Path, suffix: str):
        import av

        self.container, self.suffix = av.open(str(path), "w"), suffix
        self.stream, self.started, self.last_pts, self.frames = None, None, -1, 0

    def write(self, rgb: np.ndarray) -> None:
        import av

        from segedge.video import _video_stream

        now = time.monotonic()
        if self.stream is None:
            self.started = now
            self.stream = _video_stream(self.container, self.suffix, rgb.shape[1], rgb.shape[0], 30, MILLISECOND,
                                        alpha=False)
            if self.suffix != ".avi":  # encoder clock in ms too, or frames closer than 1/30 s would collide
                self.stream.codec_context.time_base = MILLISECOND
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
        if self.suffix != ".avi":
            self.last_pts = max(self.last_pts + 1, round((now - self.started) * 1000))  # strictly increasing
            frame.pts, frame.time_base = self.last_pts, MILLISECOND
        self.container.mux(self.stream.encode(frame))
        self.frames += 1

    def close(self) -> None:
        if self.stream is not None:
            self.container.mux(self.stream.encode(None))
        self.container.close()
