"""Media helpers: images, folders and videos (PyAV, so users need no system ffmpeg); the streaming core
(segedge.stream) builds its sources and sinks on them.

Readers return RGB uint8 frames. Writers are atomic: they write a temporary file beside the target and rename it
at the end, so an error or Ctrl-C leaves no half-written output and never touches the input.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from segedge.errors import SegedgeError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm")
ALPHA_EXTENSIONS = (".png", ".webp", ".tif", ".tiff")


def to_rgb8(image: np.ndarray) -> np.ndarray:
    """Any image cv2 decodes (gray, BGR, BGRA; 8 or 16 bit) -> RGB uint8."""
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    elif image.dtype != np.uint8:
        image = np.clip(image.astype(np.float32) * (255.0 if image.max() <= 1.0 else 1.0), 0, 255).astype(np.uint8)
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2RGB)
    if image.shape[2] == 1:
        return cv2.cvtColor(image[..., 0], cv2.COLOR_GRAY2RGB)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def read_image(path: str | Path) -> np.ndarray:
    """RGB uint8 image; a one-line SegedgeError for a missing or unreadable file."""
    path = Path(path)
    if not path.is_file():
        raise SegedgeError(f"image not found: {path}")
    return decode_image(np.fromfile(path, dtype=np.uint8), str(path))


def decode_image(data: bytes | np.ndarray, name: str = "upload") -> np.ndarray:
    """Encoded image bytes (a file's, an upload's) -> RGB uint8; a one-line SegedgeError naming `name`."""
    data = np.frombuffer(data, np.uint8) if isinstance(data, bytes | bytearray) else data
    # ANYCOLOR|ANYDEPTH keeps gray and 16-bit as they are and, unlike UNCHANGED, applies the EXIF orientation,
    # so phone photos come out the way they are shown (the alpha of an RGBA input is dropped here; read_alpha reads it)
    image = cv2.imdecode(data, cv2.IMREAD_ANYCOLOR | cv2.IMREAD_ANYDEPTH) if data.size else None
    if image is None:
        raise SegedgeError(f"cannot decode image {name}: the file is empty, corrupt or not an image")
    return to_rgb8(image)


NO_SPACE = (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)  # disk full, file size limit, quota


class OutputFull(SegedgeError):
    """The disk (or quota, or file size limit) ran out while writing an output."""


def temp_path(path: Path) -> Path:
    """A hidden name beside `path`, unique per call, so concurrent runs to one output never share a temp file.
    It keeps the extension: PyAV and OpenCV pick the format from it."""
    return path.with_name(f".{path.stem}.{os.getpid()}-{secrets.token_hex(4)}.partial{path.suffix}")


def av_reason(exc) -> str:
    """What a PyAV error says, without the file name (which may be a hidden temp file)."""
    log = f" ({exc.log[2].strip()})" if getattr(exc, "log", None) else ""
    return f"{exc.strerror or type(exc).__name__}{log}"


def read_alpha(path: str | Path) -> np.ndarray | None:
    """An image's own transparency as float32 H x W in [0, 1]; None when it has no alpha channel."""
    return decode_alpha(np.fromfile(path, dtype=np.uint8))


def decode_alpha(data: np.ndarray) -> np.ndarray | None:
    """The transparency of encoded image bytes (uint8 array), as read_alpha gives it."""
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if image is None or image.ndim != 3 or image.shape[2] != 4:
        return None
    alpha = image[..., 3].astype(np.float32)
    return alpha / np.iinfo(image.dtype).max if image.dtype.kind in "iu" else np.clip(alpha, 0.0, 1.0)


@contextlib.contextmanager
def atomic_output(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` only when the block succeeds.

    A full disk anywhere in the block becomes a one-line OutputFull error; the temp file is always removed."""
    path = Path(path)
    if not path.parent.exists():
        raise SegedgeError(f"output folder does not exist: {path.parent}")
    if not os.access(path.parent, os.W_OK):
        raise SegedgeError(f"output folder is not writable: {path.parent}")
    tmp = temp_path(path)
    try:
        yield tmp
        os.replace(tmp, path)
    except OSError as exc:
        if exc.errno not in NO_SPACE:
            raise
        raise OutputFull(f"cannot write {path}: {exc.strerror}; free some space or write elsewhere (nothing "
                         "half-written was left)") from None
    finally:
        tmp.unlink(missing_ok=True)


def write_image(path: str | Path, image: np.ndarray) -> Path:
    """Write RGB, RGBA or grayscale uint8 atomically; the format follows the extension."""
    path = Path(path)
    encoded = image_file_bytes(path, image)
    with atomic_output(path) as tmp:
        tmp.write_bytes(encoded)  # not ndarray.tofile: its OSError on a full disk carries no errno
    return path


def image_file_bytes(path, image: np.ndarray) -> bytes:
    """The bytes of the image file `path` (a Path, or anything with its suffix) names: the format follows the
    extension; a one-line error for a name that is no image or a cut-out in a format without alpha."""
    if path.suffix.lower() not in IMAGE_EXTENSIONS:
        raise SegedgeError(f"output {path}: name it with an image extension ({', '.join(IMAGE_EXTENSIONS)})")
    if image.ndim == 3 and image.shape[2] == 4 and path.suffix.lower() not in ALPHA_EXTENSIONS:
        raise SegedgeError(f"{path}: a cut-out has transparency; write it as .png or .webp")
    return encode_image(image, path.suffix.lower() or ".png", str(path))


def encode_image(image: np.ndarray, suffix: str, name: str = "output") -> bytes:
    """RGB, RGBA or grayscale uint8 -> the bytes of an image file of that suffix (".png", ".jpg", ...)."""
    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGBA2BGRA if image.shape[2] == 4 else cv2.COLOR_RGB2BGR)
    ok, encoded = cv2.imencode(suffix, image)
    if not ok:
        raise SegedgeError(f"cannot encode an image as {suffix or '(no extension)'}: {name}")
    return encoded.tobytes()


def expand_images(source: str) -> list[Path]:
    """Images of a folder (sorted) or a glob pattern."""
    path = Path(source)
    files = sorted(path.iterdir()) if path.is_dir() else [Path(p) for p in sorted(glob.glob(source))]
    images = [p for p in files if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS]
    if not images:
        raise SegedgeError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) in {source}")
    return images


@dataclass
class VideoInfo:
    width: int
    height: int
    fps: float
    frames: int  # 0 when the container does not say
    rotation: int  # degrees counter-clockwise that the player applies
    has_audio: bool


def open_video(path: Path):
    """An open PyAV container with a video stream; one-line errors for a missing, empty or unreadable file."""
    import av

    if not path.is_file():
        raise SegedgeError(f"video not found: {path}")
    if path.stat().st_size == 0:
        raise SegedgeError(f"video {path} is empty (0 bytes)")
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, UnicodeDecodeError) as exc:
        raise SegedgeError(f"cannot open video {path}: {exc.__class__.__name__}; is it a real video file?") from None
    if not container.streams.video:
        container.close()
        raise SegedgeError(f"{path} has no video stream")
    return container


def video_rate(stream):
    """A video stream's frame rate as a fraction: the average, else FFmpeg's guess, else 25."""
    return stream.average_rate or stream.guessed_rate or 25


def estimate_frames(container, stream, rate) -> int | None:
    """Frame count for a progress bar's ETA: from the header, else from the duration (MKV/WebM say none)."""
    if stream.frames:
        return stream.frames
    if stream.duration and stream.time_base:
        return round(float(stream.duration * stream.time_base) * float(rate))
    if container.duration:
        return round(container.duration / 1_000_000 * float(rate))
    return None


def probe_video(path: str | Path) -> VideoInfo:
    """Size (as stored), frame rate, frame count, rotation (read from the first frame's display matrix) and audio."""
    path = Path(path)
    with open_video(path) as container:
        stream = container.streams.video[0]
        rate = video_rate(stream)
        first = next(container.decode(stream), None)
        rotation = round(first.rotation or 0) % 360 if first is not None else 0
        return VideoInfo(stream.codec_context.width, stream.codec_context.height, float(rate), stream.frames or 0,
                         rotation, bool(container.streams.audio))


def frame_rate_varies(path: Path) -> bool:
    """Whether the video's frames are spaced unevenly (phones record variable frame rate): read from the packets'
    timestamps, nothing decoded. Steps within one clock tick and 1% of each other count as even."""
    with open_video(path) as container:
        stream = container.streams.video[0]
        pts = sorted(packet.pts for packet in container.demux(stream) if packet.pts is not None)
    steps = np.diff(pts)
    return steps.size > 0 and steps.max() > steps.min() * 1.01 + 1


def upright(frame, reformatter=None) -> np.ndarray:
    """RGB array of a decoded PyAV frame, turned the way players show it (rotation side data).

    Pass one `av.video.reformatter.VideoReformatter` for all frames of a video: `frame.to_ndarray(format=...)`
    builds a new swscale context per frame, which cost ~4 ms of a 640x360 frame against ~0.5 ms reused."""
    rgb = (reformatter.reformat(frame, format="rgb24") if reformatter else frame.reformat(format="rgb24")).to_ndarray()
    turns = (round(frame.rotation or 0) // 90) % 4
    return np.ascontiguousarray(np.rot90(rgb, turns)) if turns else rgb
