"""Live sources (a webcam, or a video file played as one): the effect shown in a window, served as a browser
preview, sent to a virtual camera, recorded to a video file, or several of these at once.

Live frames are never queued: the model always gets the newest frame and stale ones are dropped (counted), and the
summary reports the end-to-end latency from capture to output. Recordings carry wall-clock timestamps, so they play
at real speed even when the model runs slower than the camera, and they are written atomically: q, Esc or Ctrl-C end
them cleanly; an error leaves no file behind.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from pathlib import Path

import cv2

from segedge.effects import Effect
from segedge.errors import SegedgeError
from segedge.media import VIDEO_EXTENSIONS
from segedge.stream import VIDEO, Camera, Speed, Stats, VideoWriter, Window, stream
from segedge.stream.preview import Preview
from segedge.stream.sinks import Tee, VirtualCamera

log = logging.getLogger("segedge")


@dataclass
class LiveOutputs:
    """Where live frames go; with none of them, a desktop window."""

    target: Path | None = None  # a recording
    virtual_cam: bool = False
    preview: bool = False
    preview_port: int = 0  # 0: any free port


def run_webcam(segmenter, index: int, target: Path | None, effect: Effect | None = None,
               threshold: float | None = None, smooth: float = 0.5, quiet: bool = True) -> Path | None:
    """Until the stream ends or q/Esc/Ctrl-C: segment, smooth, composite; show in a window or record."""
    run_live(segmenter, lambda: Camera.open(index), LiveOutputs(target), effect, threshold, smooth, quiet)
    return target


def run_live(segmenter, open_source, outputs: LiveOutputs, effect: Effect | None = None,
             threshold: float | None = None, smooth: float = 0.5, quiet: bool = True, speed: Speed = VIDEO) -> Stats:
    """Every frame of the live source that `open_source()` opens into the outputs, until it ends, a viewer quits
    or Ctrl-C. The outputs open first: no camera is opened when there is nowhere to send its frames."""
    target = outputs.target
    if target is not None and target.suffix.lower() not in VIDEO_EXTENSIONS:
        raise SegedgeError(f"{target}: record a webcam to a video file ({', '.join(VIDEO_EXTENSIONS)})")
    effect, stats = effect or Effect(), Stats()
    with contextlib.ExitStack() as stack:
        sinks = []

        def enter(sink):
            sinks.append(stack.enter_context(sink))
            return sink

        preview = enter(Preview(effect, stats, outputs.preview_port)) if outputs.preview else None
        if not (outputs.preview or outputs.virtual_cam or target):  # the window first: without one, no camera opens
            enter(Window())
        source = stack.enter_context(open_source())
        recorder = enter(VideoWriter(target, source.rate, source.time_base, live=True)) if target else None
        if outputs.virtual_cam:
            enter(VirtualCamera(fps=source.rate))
        if preview is not None:
            print(f"preview: {preview.url} (Ctrl-C to stop)", flush=True)
        stream(source, segmenter, Tee(*sinks), effect, threshold, smooth, quiet=quiet, stats=stats,
               controls=preview.controls if preview else None, speed=speed)
        if recorder is not None and recorder.frames == 0:
            raise SegedgeError("the webcam gave no frames; nothing was recorded")
    return stats


def stream_capture(segmenter, capture: cv2.VideoCapture, target: Path, effect: Effect | str | None = None,
                   threshold: float | None = None, smooth: float = 0.5, quiet: bool = True) -> Path:
    """Every frame of an open capture (camera, or any source OpenCV opens) recorded to `target`."""
    effect = Effect(effect) if isinstance(effect, str) else effect
    run_live(segmenter, lambda: Camera(capture), LiveOutputs(target), effect, threshold, smooth, quiet)
    return target
