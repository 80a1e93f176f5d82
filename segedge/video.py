"""A video file through the streaming core: decoded once, segmented, composited and encoded in overlapping
threads, written atomically. Audio is copied packet for packet (transcoded only when the output container cannot
hold the input codec); frame count, timestamps and so duration are kept; rotated phone videos are turned upright.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from segedge.effects import Effect
from segedge.errors import SegedgeError
from segedge.media import VIDEO_EXTENSIONS, av_reason, frame_rate_varies
from segedge.stream import VIDEO, Speed, Stats, VideoReader, VideoWriter, stream

VideoStats = Stats  # the name process_video's result had before the streaming core


@contextlib.contextmanager
def named_errors(source: Path, target: Path) -> Iterator[None]:
    """Any PyAV error (decoder, encoder, muxer, end-of-stream flush, trailer) as one line naming the input and the
    output the user asked for, never the hidden temp file."""
    import av

    try:
        yield
    except av.error.FFmpegError as exc:
        raise SegedgeError(f"video {source} -> {target}: {av_reason(exc)}") from None


def check_video_output(source: Path, target: Path) -> None:
    """Refuse, before any work, an output no video can be written to."""
    if target.suffix.lower() not in VIDEO_EXTENSIONS:
        raise SegedgeError(f"output {target}: name it with a video extension ({', '.join(VIDEO_EXTENSIONS)})")
    if target.suffix.lower() == ".avi":
        with named_errors(source, target):
            if frame_rate_varies(source):
                raise SegedgeError(f"{source} has a variable frame rate, which AVI cannot store; write .mp4, .mkv, "
                                   ".mov or .webm instead")


def process_video(segmenter, source: str | Path, target: str | Path, effect: Effect | str | None = None,
                  threshold: float | None = None, smooth: float = 0.5, quiet: bool = False,
                  threaded: bool = True, speed: Speed = VIDEO) -> Stats:
    """Apply an effect to every frame of a video file, writing `target` atomically with the input's audio
    (`threaded` False runs the stages one after another, to time each on its own; `speed`: see stream.Speed)."""
    source, target = Path(source), Path(target)
    check_video_output(source, target)
    with named_errors(source, target), VideoReader(source) as reader, \
            VideoWriter(target, reader.rate, reader.time_base, audio=reader.audio) as sink:
        stats = stream(reader, segmenter, sink, effect, threshold, smooth, threaded, quiet, speed=speed)
        if stats.frames == 0:
            raise SegedgeError(f"video {source} has no decodable frames")
    return stats
