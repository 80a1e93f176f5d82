"""Frame sources: image files, a video file (PyAV), a camera (OpenCV) and a video file played as a camera. Each
yields `Frame`s in order and is a context manager that releases what it opened.

A source also says how to present it: `total` frames for the progress bar (None when unknown), `unit`, `name`,
and `live` (a camera: no end of its own, so Ctrl-C ends it cleanly, and it has no timestamps of its own).

Live sources never queue: a capture thread keeps only the newest frame, and the consumer always gets the newest
one (a live view must show now, not a backlog); the frames it never took are counted in `dropped`.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

from segedge.errors import SegedgeError
from segedge.media import estimate_frames, open_video, read_alpha, read_image, upright, video_rate

log = logging.getLogger("segedge")
MILLISECOND = Fraction(1, 1000)


@dataclass
class Frame:
    """One RGB uint8 frame and what came with it."""

    rgb: np.ndarray
    pts: int | None = None  # presentation time in time_base units (video and camera)
    time_base: Fraction | None = None
    path: Path | None = None  # the image file it was read from
    alpha: np.ndarray | None = None  # the image's own transparency, kept for cut-outs
    audio: list = field(default_factory=list)  # audio packets demuxed up to this frame (video files)
    captured: float | None = None  # time.perf_counter() at capture (live sources), for end-to-end latency

    @property
    def seconds(self) -> float | None:
        return None if self.pts is None else float(self.pts * self.time_base)


class Source:
    total: int | None = None
    unit = "frame"
    name: str | None = None
    live = False

    def __iter__(self) -> Iterator[Frame]:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class Images(Source):
    """Image files in order. With `skip_unreadable` (folders) an unreadable file is reported and left out, and
    `failed` lists it (`errors` says why); otherwise its error ends the run. `keep_alpha` reads each image's own
    transparency."""

    unit = "img"

    def __init__(self, paths: list[Path], skip_unreadable: bool = False, keep_alpha: bool = False):
        self.paths, self.skip_unreadable, self.keep_alpha = paths, skip_unreadable, keep_alpha
        self.total, self.failed = len(paths), []
        self.errors: dict[Path, str] = {}

    def __iter__(self) -> Iterator[Frame]:
        for path in self.paths:
            try:
                rgb, alpha = self.read(path)
            except SegedgeError as exc:
                if not self.skip_unreadable:
                    raise
                log.warning("skipped: %s", exc)
                self.failed.append(path)
                self.errors[path] = str(exc)
                continue
            yield Frame(rgb, path=path, alpha=alpha)

    def read(self, path: Path) -> tuple[np.ndarray, np.ndarray | None]:
        """The image's RGB and, with keep_alpha, its own transparency (a subclass may read from elsewhere)."""
        rgb = read_image(path)
        return rgb, self.fitting_alpha(path, rgb, read_alpha(path)) if self.keep_alpha else None

    @staticmethod
    def fitting_alpha(path: Path, rgb: np.ndarray, alpha: np.ndarray | None) -> np.ndarray | None:
        if alpha is not None and alpha.shape != rgb.shape[:2]:  # EXIF turned the colours, not the alpha (read raw)
            log.warning("WARNING: %s: its own transparency is left out (the EXIF orientation turned the image)", path)
            return None
        return alpha


class VideoReader(Source):
    """Frames of a video file, turned upright, with their timestamps. The file is opened once: its audio packets
    are demuxed with the video and ride along on the frames, so a sink can copy them in step.

    A damaged packet (corrupt, or cut off at the end of a truncated file) loses its own frame only, with a warning.
    """

    def __init__(self, path: Path):
        self.path, self.name = Path(path), Path(path).name
        self.container = open_video(self.path)
        self.video = self.container.streams.video[0]
        self.video.thread_type = "AUTO"
        self.rate, self.time_base = video_rate(self.video), self.video.time_base
        self.total = estimate_frames(self.container, self.video, self.rate)
        self.audio = self._known_audio()
        self.frames = 0

    def _known_audio(self) -> list:
        """The audio tracks that can be carried over; the others are dropped with a warning."""
        known = []
        for number, stream in enumerate(self.container.streams.audio, start=1):
            if stream.codec_context is None:  # FFmpeg cannot identify the codec: neither copy nor decode is possible
                log.warning("WARNING: audio track %d of %s has a codec FFmpeg does not know; it is left out of the "
                            "output", number, self.path)
            else:
                known.append(stream)
        return known

    def __iter__(self) -> Iterator[Frame]:
        import av
        from av.video.reformatter import VideoReformatter

        reformatter, damaged, audio, held = VideoReformatter(), 0, [], None
        for packet in self.container.demux([self.video, *self.audio]):
            if packet.stream.index != self.video.index:
                audio.append(packet)
                continue
            try:
                decoded = packet.decode()
            except av.error.InvalidDataError:
                damaged += 1
                continue
            for frame in decoded:
                if held is not None:  # one frame held back, so the audio after the last frame travels with it
                    yield held
                held, audio = Frame(upright(frame, reformatter), frame.pts, frame.time_base, audio=audio), []
                self.frames += 1
        if held is not None:
            held.audio.extend(audio)
            yield held
        if damaged:
            log.warning("WARNING: %s: %d damaged video packet(s) could not be decoded; their frames are left out",
                        self.path, damaged)
        self._warn_if_short()

    def _warn_if_short(self) -> None:
        """A truncated file decodes fewer frames than its header promises: say so rather than pass silently."""
        declared, rate = self.total, self.rate
        if declared and declared - self.frames > max(1, declared // 100):
            log.warning("WARNING: %s ended early: read %d of the %d frames it declares (%.1f s of %.1f s); the "
                        "output is shorter than the input", self.path, self.frames, declared, self.frames / rate,
                        declared / rate)

    def close(self) -> None:
        self.container.close()


class LiveSource(Source):
    """A source that produces frames at its own pace (a camera). A capture thread runs `capture()` and keeps only
    the newest frame; iterating waits for a frame newer than the last one given out, so a slow consumer skips
    stale frames (counted in `dropped`) instead of falling behind. Frames carry the wall clock in milliseconds,
    strictly increasing, so a recording plays at real speed even when the model runs slower."""

    live = True
    rate, time_base = 30, MILLISECOND  # rate: the nominal frames/s, for containers that store one (AVI)

    def capture(self) -> Iterator[np.ndarray]:
        """RGB frames as they arrive, at the source's own pace; ends when the source does."""
        raise NotImplementedError

    dropped = 0
    _worker: threading.Thread | None = None

    def __iter__(self) -> Iterator[Frame]:
        self.dropped, self._newest, self._ended, self._error = 0, None, False, None
        self._ready, self._stop = threading.Condition(), threading.Event()
        self._worker = threading.Thread(target=self._keep_newest, daemon=True)
        self._worker.start()
        try:
            while (frame := self._take()) is not None:
                yield frame
        finally:
            self.stop_capture()
        if self._error is not None:
            raise self._error

    def stop_capture(self) -> None:
        """Stop the capture thread (before the device it reads is released)."""
        if self._worker is not None:
            self._stop.set()
            self._worker.join(timeout=2)
            self._worker = None

    def close(self) -> None:
        self.stop_capture()

    def _keep_newest(self) -> None:
        started = time.monotonic()
        try:
            with contextlib.closing(self.capture()) as frames:  # closed (file, device) also when stopped early
                self._publish(frames, started)
        except BaseException as exc:  # re-raised in the consumer's thread
            self._error = exc
        finally:
            with self._ready:
                self._ended = True
                self._ready.notify()

    def _publish(self, frames: Iterator[np.ndarray], started: float) -> None:
        last = -1
        for rgb in frames:
            if self._stop.is_set():
                return
            now = time.perf_counter()
            last = max(last + 1, round((time.monotonic() - started) * 1000))
            with self._ready:
                self.dropped += self._newest is not None  # overwritten before anyone took it: stale
                self._newest = Frame(rgb, last, MILLISECOND, captured=now)
                self._ready.notify()

    def _take(self) -> Frame | None:
        with self._ready:
            self._ready.wait_for(lambda: self._newest is not None or self._ended)
            frame, self._newest = self._newest, None
            return frame


class Camera(LiveSource):
    """Frames of an open OpenCV capture (a webcam, or anything OpenCV opens)."""

    name = "webcam"

    def __init__(self, capture: cv2.VideoCapture):
        self.capture_device = capture

    @classmethod
    def open(cls, index: int, size: tuple[int, int] | None = None, fps: float | None = None) -> Camera:
        """Camera `index`, asked for `size` (width, height) and `fps` where given; the camera may pick the nearest
        mode it has, so what it gave is logged."""
        capture = cv2.VideoCapture(index)
        if not capture.isOpened():
            raise SegedgeError(f"webcam {index} does not open: check the index (0, 1, ...) and that no other "
                               "program holds the camera")
        if size:
            capture.set(cv2.CAP_PROP_FRAME_WIDTH, size[0])
            capture.set(cv2.CAP_PROP_FRAME_HEIGHT, size[1])
        if fps:
            capture.set(cv2.CAP_PROP_FPS, fps)
        camera = cls(capture)
        camera.rate = round(capture.get(cv2.CAP_PROP_FPS)) or fps or cls.rate
        log.info("webcam %d: %dx%d at %s frames/s", index, capture.get(cv2.CAP_PROP_FRAME_WIDTH),
                 capture.get(cv2.CAP_PROP_FRAME_HEIGHT), camera.rate)
        return camera

    def capture(self) -> Iterator[np.ndarray]:
        while (result := self.capture_device.read())[0]:
            yield cv2.cvtColor(result[1], cv2.COLOR_BGR2RGB)

    def close(self) -> None:
        self.stop_capture()
        self.capture_device.release()


class LiveVideo(LiveSource):
    """A video file played as if it were a camera: frames released at the file's frame rate (in real time, not as
    fast as it decodes), so a live setup (preview, virtual camera, latency, dropped frames) can be tried and tested
    without a camera. `loop` plays it again from the start at its end, as a camera never ends."""

    def __init__(self, path: Path, loop: bool = False):
        self.path, self.name, self.loop = Path(path), Path(path).name, loop
        with VideoReader(self.path) as video:
            self.rate = video.rate

    def capture(self) -> Iterator[np.ndarray]:
        started, shown = time.perf_counter(), 0
        while True:
            with VideoReader(self.path) as video:
                for frame in video:
                    delay = started + shown / float(self.rate) - time.perf_counter()
                    if delay > 0:
                        time.sleep(delay)
                    shown += 1
                    yield frame.rgb
            if not self.loop or not shown:
                return
