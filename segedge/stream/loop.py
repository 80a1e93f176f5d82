"""The one frame loop: source -> model -> matte -> effect -> sink, for every input kind (`segedge run`, the
webcam, `segedge bench --pipeline`).

Threaded, three stages overlap: a thread decodes, the calling thread runs the model (batched when the model takes
batches) and refines the mattes, a thread applies the effect and writes (compositing there balances the two busy
threads better: +2-12% frames/s on 2 cores). Queues are bounded, so memory stays flat. Sequential, one thread does
it all, frame by frame: for live sources (a window must be drawn from the main thread) and for timing each stage
on its own. Either way every stage's time is added up in `Stats.stage_seconds`.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import cv2
import numpy as np

from segedge.effects import Effect, alpha_to_uint8
from segedge.errors import SegedgeError
from segedge.refine import MotionCompensation, TemporalSmoother, refine_size
from segedge.runtime import check_threshold
from segedge.stream.sinks import EndOfStream, Sink
from segedge.stream.sources import Frame, Source

QUEUE_SIZE = 16
STAGES = ("decode", "preprocess", "inference", "refine", "composite", "encode")
_DONE = object()


@dataclass(frozen=True)
class Speed:
    """Where a video trades exactness for frames/s (the costs are measured in benchmarks/results/live_pipeline.md).

    model_every: the model sees every n-th frame; the frames between reuse its (smoothed) probabilities, moved along
    the optical flow to the frame (`warp`, refine.MotionCompensation) and refined along its own edges.
    refine_pixels: the guided upsampling runs on the frame scaled down to at most this many pixels and the 8-bit
    matte is scaled up (None: at full resolution)."""

    model_every: int = 1
    refine_pixels: int | None = None
    warp: bool = True

    def __post_init__(self):
        if self.model_every < 1:
            raise SegedgeError(f"model every {self.model_every} frames: must be at least 1 (every frame)")


EXACT = Speed()
# video files and live sources: the guided upsampling at 640x360's pixel count, 3-4x less of its CPU time at 720p for
# 0.01% of pixels changed on real footage (benchmarks/results/live_pipeline.md); the model still sees every frame
VIDEO = Speed(refine_pixels=640 * 360)


@dataclass
class Stats:
    frames: int = 0
    seconds: float = 0.0
    stage_seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))
    dropped: int = 0  # stale frames a live source skipped (it keeps only the newest)
    latencies: list[float] = field(default_factory=list)  # live sources: capture to written/shown, seconds

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds else 0.0

    def latency_ms(self, percentile: float) -> float | None:
        """End-to-end latency (capture to output) at `percentile`, in ms; None without a live source."""
        return float(np.percentile(self.latencies, percentile) * 1000) if self.latencies else None

    def summary(self) -> str:
        """One line for a person: frames/s, and for a live source the latency and the frames dropped."""
        line = f"{self.frames} frames in {self.seconds:.1f} s ({self.fps:.1f} frames/s)"
        if self.latencies:
            line += (f"; latency capture to output p50 {self.latency_ms(50):.0f} ms, p90 {self.latency_ms(90):.0f} ms"
                     f"; {self.dropped} stale frames dropped")
        return line

    @contextlib.contextmanager
    def timing(self, stage: str) -> Iterator[None]:
        """Add the block's time to `stage` (each stage runs in one thread only, so no lock is needed)."""
        started = time.perf_counter()
        yield
        self.stage_seconds[stage] += time.perf_counter() - started


class _Steps:
    """What happens to frames between the source and the sink, each step timed."""

    def __init__(self, segmenter, sink: Sink, effect: Effect | str | None, threshold: float | None, smooth: float,
                 stats: Stats | None = None, controls: Callable[[], Effect | None] | None = None,
                 speed: Speed = EXACT):
        check_threshold(threshold)
        effect = Effect(effect) if isinstance(effect, str) else effect or Effect()
        self.segmenter, self.sink, self.threshold, self.controls = segmenter, sink, threshold, controls
        # motion-aware: as steady as plain EMA where the picture is still, a quarter of its trail behind moving people
        # (benchmarks/results/flicker.md)
        self.effect, self.smoother = effect.for_sink(sink), TemporalSmoother(smooth, motion_aware=True)
        self.stats = stats if stats is not None else Stats()
        self.speed, self.seen, self.last_prob = speed, 0, None
        self.motion = MotionCompensation() if speed.model_every > 1 and speed.warp else None

    def decode(self, frames: Iterator[Frame]) -> Frame | None:
        with self.stats.timing("decode"):
            return next(frames, None)

    def mattes(self, frames: list[Frame]) -> list[np.ndarray]:
        """8-bit full-resolution mattes, smoothed in order; an image's own transparency stays transparent."""
        probs = self.probabilities(frames)
        with self.stats.timing("refine"):
            return [self.refine(frame, prob) for frame, prob in zip(frames, probs, strict=True)]

    def probabilities(self, frames: list[Frame]) -> list[np.ndarray | None]:
        """The model's probabilities for the frames it is due to see (None for the others)."""
        due = [(self.seen + i) % self.speed.model_every == 0 for i in range(len(frames))]
        self.seen += len(frames)
        with self.stats.timing("preprocess"):
            tensors = self.segmenter.model_inputs([f.rgb for f, is_due in zip(frames, due, strict=True) if is_due])
        with self.stats.timing("inference"):
            fresh = iter(self.segmenter.infer(tensors) if tensors else [])
        return [next(fresh) if is_due else None for is_due in due]

    def refine(self, frame: Frame, prob: np.ndarray | None) -> np.ndarray:
        """Smoothed probabilities (a new model output, else the last one) -> 8-bit matte at the frame's size."""
        if prob is not None:  # the first frame always has one
            current = self.last_prob = self.smoother(prob, frame.rgb)
            if self.motion is not None:
                self.motion.keyframe(frame.rgb, prob)
        else:
            current = self.last_prob if self.motion is None else self.motion(self.last_prob, frame.rgb)
        height, width = frame.rgb.shape[:2]
        small = refine_size((height, width), self.speed.refine_pixels)
        guide = frame.rgb if small == (height, width) else \
            cv2.resize(frame.rgb, small[::-1], interpolation=cv2.INTER_AREA)
        matte = alpha_to_uint8(self.segmenter.to_matte(current, guide, self.threshold))
        if small != (height, width):
            matte = cv2.resize(matte, (width, height), interpolation=cv2.INTER_LINEAR)
        return matte if frame.alpha is None else cv2.multiply(matte, alpha_to_uint8(frame.alpha), scale=1 / 255)

    def output(self, frame: Frame, matte: np.ndarray) -> None:
        if self.controls is not None and (changed := self.controls()) is not None:  # switched live, between frames
            self.effect = changed.for_sink(self.sink)
        with self.stats.timing("composite"):
            image = self.effect(frame.rgb, matte)
        with self.stats.timing("encode"):
            self.sink.write(image, frame)
        if frame.captured is not None:
            self.stats.latencies.append(time.perf_counter() - frame.captured)


def stream(source: Source, segmenter, sink: Sink, effect: Effect | str | None = None, threshold: float | None = None,
           smooth: float = 0.0, threaded: bool | None = None, quiet: bool = True, stats: Stats | None = None,
           controls: Callable[[], Effect | None] | None = None, speed: Speed = EXACT) -> Stats:
    """Every frame of `source` through `segmenter` and `effect` into `sink` (entered by the caller, which so
    decides when the output is committed). Threaded unless the source is live or holds one frame (a photo: threads
    would only add their start-up); `smooth` is the temporal smoothing of the probabilities (0 = off). A window
    closed by its viewer, or Ctrl-C on a live source, ends the stream cleanly. `stats` (optional) is filled as frames
    go, for a live view of them; `controls`, called between frames, returns a new Effect to switch to (or None);
    `speed` what a video may trade for frames/s (default: nothing)."""
    steps = _Steps(segmenter, sink, effect, threshold, smooth, stats, controls, speed)
    if threaded is None:
        threaded = not source.live and source.total != 1
    run = _threaded if threaded else _sequential
    bar = _progress_bar(source, quiet)
    started = time.perf_counter()
    try:
        run(source, steps, bar)
    except EndOfStream:
        pass
    except KeyboardInterrupt:  # the normal way to end a live source; a file's output is discarded instead
        if not source.live:
            raise
    finally:
        bar.close()
    steps.stats.seconds = time.perf_counter() - started
    steps.stats.dropped = getattr(source, "dropped", 0)
    return steps.stats


class _NoBar:
    def update(self, count: int) -> None:
        pass

    def close(self) -> None:
        pass


def _progress_bar(source: Source, quiet: bool):
    """tqdm for many frames; none for one image, whose run then skips tqdm's import (it reads package metadata)."""
    if quiet or source.total == 1:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=source.total, unit=source.unit, desc=source.name)


def _sequential(source: Source, steps: _Steps, bar) -> None:
    frames = iter(source)
    while (frame := steps.decode(frames)) is not None:
        steps.output(frame, steps.mattes([frame])[0])
        steps.stats.frames += 1
        bar.update(1)


def _threaded(source: Source, steps: _Steps, bar) -> None:
    stop = threading.Event()
    decoded, matted = queue.Queue(QUEUE_SIZE), queue.Queue(QUEUE_SIZE)

    def read() -> None:
        frames = iter(source)
        while (frame := steps.decode(frames)) is not None:
            if not _put(decoded, frame, stop):
                return
        _put(decoded, _DONE, stop)

    def write() -> None:
        while (item := _get(matted, stop)) is not _DONE:
            steps.output(*item)

    workers = [_Worker(read, stop), _Worker(write, stop)]
    for worker in workers:
        worker.start()
    try:
        _infer_all(decoded, matted, stop, steps, bar)
        _put(matted, _DONE, stop)
        workers[1].join()
    finally:
        stop.set()  # after success both threads are done; after an error this unblocks them
        for worker in workers:
            worker.join()
    for worker in workers:
        if worker.error is not None:
            raise worker.error


def _infer_all(decoded: queue.Queue, matted: queue.Queue, stop: threading.Event, steps: _Steps, bar) -> None:
    """Calling thread: batch frames as the backend allows, hand each frame on with its matte, in order."""
    for batch in _batches(decoded, stop, steps.segmenter.max_batch):
        for frame, matte in zip(batch, steps.mattes(batch), strict=True):
            if not _put(matted, (frame, matte), stop):
                return
            steps.stats.frames += 1
            bar.update(1)


def _batches(decoded: queue.Queue, stop: threading.Event, size: int) -> Iterator[list[Frame]]:
    """Runs of up to `size` frames: wait for the first, add only those already decoded (no waiting to fill)."""
    while (first := _get(decoded, stop)) is not _DONE:
        batch = [first]
        while len(batch) < size:
            try:
                item = decoded.get_nowait()
            except queue.Empty:
                break
            if item is _DONE:
                yield batch
                return
            batch.append(item)
        yield batch


class _Worker(threading.Thread):
    """A thread that runs `target`; on failure it keeps the exception for the main thread and stops the pipeline,
    so no other stage waits forever on a queue this one will never fill or drain."""

    def __init__(self, target: Callable[[], None], stop: threading.Event):
        super().__init__(daemon=True)
        self._target_fn, self._stop_event, self.error = target, stop, None

    def run(self) -> None:
        try:
            self._target_fn()
        except BaseException as exc:  # re-raised in the caller's thread
            self.error = exc
            self._stop_event.set()


def _put(q: queue.Queue, item, stop: threading.Event) -> bool:
    """Blocking put that gives up when the pipeline is stopping (so no thread hangs on a full queue)."""
    while not stop.is_set():
        try:
            q.put(item, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False


def _get(q: queue.Queue, stop: threading.Event):
    while not stop.is_set():
        try:
            return q.get(timeout=0.1)
        except queue.Empty:
            continue
    return _DONE
