"""Frame sinks: image files, a video file (audio carried over), a window, a virtual camera, and several at once.

A sink is a context manager with `write(image, frame)`: `image` is the effect's output (RGB, RGBA or grayscale
uint8) and `frame` the source frame it came from (for its name and timestamp). File sinks are atomic: the output
appears under its name only when the block ends without error, and nothing half-written is left otherwise.
`alpha` says whether the sink can keep a transparent background (see Effect.for_sink).

A new sink (a virtual camera, an HTTP response) is a small subclass of Sink.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

import cv2
import numpy as np

from segedge.errors import SegedgeError
from segedge.media import atomic_output, encode_image, write_image
from segedge.stream.audio import AudioTrack
from segedge.stream.sources import Frame

ALPHA_VIDEO = {".webm": ("libvpx-vp9", "yuva420p")}
VIDEO_CODECS = {".webm": "libvpx-vp9", ".avi": "mpeg4"}  # others: H.264
# H.264 settings of every video segedge writes (run, webcam recordings, bench --pipeline): visually lossless, and
# veryfast is half the encoding time of libx264's default preset (medium) at 720p
X264_OPTIONS = {"crf": "18", "preset": "veryfast"}


def video_codec(suffix: str, alpha: bool = False) -> str:
    """The codec a video file named *suffix is written with, and its settings where segedge sets any."""
    codec = ALPHA_VIDEO[suffix][0] if alpha and suffix in ALPHA_VIDEO else VIDEO_CODECS.get(suffix, "libx264")
    settings = " ".join(f"{k} {v}" for k, v in X264_OPTIONS.items()) if codec == "libx264" else "defaults"
    return f"{codec} ({settings})"
WINDOW = "segedge (q or Esc to quit)"
log = logging.getLogger("segedge")


class EndOfStream(Exception):
    """Raised by a sink whose viewer asked to stop (q or Esc in a window): the stream ends cleanly."""


class Sink:
    alpha = False

    def write(self, image: np.ndarray, frame: Frame) -> None:
        raise NotImplementedError

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        pass


def as_rgb(image: np.ndarray) -> np.ndarray:
    """Grayscale (a mask) as three equal channels, for outputs that only show colour."""
    return np.repeat(image[..., None], 3, axis=2) if image.ndim == 2 else image


def check_distinct(source: Path, target: Path) -> None:
    if target.exists() and target.resolve() == source.resolve():
        raise SegedgeError(f"output {target} is the input; choose another -o so the input is never overwritten")


class ImageFile(Sink):
    """Every frame to one image file (a single-image run)."""

    alpha = True

    def __init__(self, target: Path):
        self.target = Path(target)

    def write(self, image: np.ndarray, frame: Frame) -> None:
        write_image(self.target, image)


FORMATS = {"png": ("image/png", ".png"), "jpeg": ("image/jpeg", ".jpg")}  # EncodedImage's formats


class EncodedImage(Sink):
    """The frame's result as the bytes of a PNG (keeps alpha) or JPEG file in memory, e.g. for an HTTP reply."""

    def __init__(self, format: str = "png"):
        self.media_type, self.suffix = FORMATS[format]
        self.alpha = format == "png"
        self.data = b""

    def write(self, image: np.ndarray, frame: Frame) -> None:
        self.data = encode_image(image, self.suffix)


class ImageFolder(Sink):
    """Each frame to `folder`/<its file's name><suffix_for(its path)>, each file atomic. The folder is made when
    missing and removed again when nothing was written into it."""

    alpha = True

    def __init__(self, folder: Path, suffix_for):
        self.folder, self.suffix_for, self.written, self.created = Path(folder), suffix_for, 0, False

    def __enter__(self):
        self.created = not self.folder.exists()
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SegedgeError(f"cannot create output folder {self.folder}: {exc.strerror}") from None
        return self

    def output(self, source: Path) -> Path:
        """Where the image read from `source` is written."""
        return self.folder / f"{source.stem}{self.suffix_for(source)}"

    def write(self, image: np.ndarray, frame: Frame) -> None:
        out = self.output(frame.path)
        check_distinct(frame.path, out)
        write_image(out, image)
        self.written += 1

    def __exit__(self, *exc) -> None:
        if self.created and not self.written:
            self.folder.rmdir()  # leave no empty output folder behind


def video_stream(container, suffix: str, width: int, height: int, rate, time_base, alpha: bool):
    """The output video stream: codec by container, the input's clock, 4:2:0 where the size allows."""
    codec, pix_fmt = ALPHA_VIDEO[suffix] if alpha else (VIDEO_CODECS.get(suffix, "libx264"), "yuv420p")
    if pix_fmt == "yuv420p" and (width % 2 or height % 2):
        pix_fmt = "yuv444p"  # 4:2:0 needs even sizes; odd-sized videos keep their size this way
    # keep the input's clock in the encoder too, so variable-frame-rate video keeps every timestamp; AVI muxes one
    # tick per frame at 1/fps (and MPEG-4 Part 2 allows no finer clock than 1/65535)
    clock = {} if suffix == ".avi" else {"time_base": time_base}
    stream = container.add_stream(codec, rate=rate, **clock)
    stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
    if clock:
        stream.time_base = time_base
    if codec == "libx264":
        stream.options = dict(X264_OPTIONS)
    return stream


class VideoWriter(Sink):
    """Frames encoded into a video file with the source's clock (`rate`, `time_base`), and the source's audio
    tracks (`audio`: PyAV input streams whose packets arrive on the frames) muxed in step.

    A `live` source's timestamps are kept too, except in AVI, which has none: there frames play at `rate`."""

    def __init__(self, target: Path, rate, time_base, audio=(), live: bool = False):
        self.target, self.suffix = Path(target), Path(target).suffix.lower()
        self.rate, self.time_base, self.audio_in = rate, time_base, list(audio)
        self.alpha = self.suffix in ALPHA_VIDEO
        self.timestamps = not (live and self.suffix == ".avi")
        self.stream, self.tracks, self.frames = None, {}, 0

    def __enter__(self):
        import av

        self.files = contextlib.ExitStack()
        tmp = self.files.enter_context(atomic_output(self.target))
        self.container = self.files.enter_context(av.open(str(tmp), "w"))
        return self

    def _start(self, image: np.ndarray) -> None:
        height, width = image.shape[:2]
        self.stream = video_stream(self.container, self.suffix, width, height, self.rate, self.time_base,
                                   alpha=image.shape[2] == 4)
        # added after the video so players see the usual order: video 0, then audio
        self.tracks = {s.index: AudioTrack(self.container, s, self.suffix) for s in self.audio_in}

    def write(self, image: np.ndarray, frame: Frame) -> None:
        import av

        image = as_rgb(image)
        if self.stream is None:
            self._start(image)
        out = av.VideoFrame.from_ndarray(image, format="rgba" if image.shape[2] == 4 else "rgb24")
        if self.timestamps:
            out.pts, out.time_base = frame.pts, frame.time_base
        self.container.mux(self.stream.encode(out))
        self.frames += 1
        for packet in frame.audio:
            self.tracks[packet.stream.index].feed(packet)
        if frame.pts is not None:
            for track in self.tracks.values():
                track.write_until(self.container, frame.seconds)

    def __exit__(self, *exc):
        if exc[0] is not None:  # close the container, remove the temp file
            return self.files.__exit__(*exc)
        with self.files:  # flush, close, and rename the temp file onto the target (or remove it on an error)
            if self.stream is not None:
                self.container.mux(self.stream.encode(None))
            for track in self.tracks.values():
                track.finish(self.container)
        return None


class Window(Sink):
    """Frames shown in a desktop window (needs OpenCV with GUI support); q or Esc ends the stream."""

    def __enter__(self):
        try:
            cv2.namedWindow(WINDOW)
        except cv2.error:
            raise SegedgeError("this OpenCV build has no window support (opencv-python-headless); "
                               "watch in the browser with --preview, or record with -o out.mp4") from None
        return self

    def write(self, image: np.ndarray, frame: Frame) -> None:
        cv2.imshow(WINDOW, cv2.cvtColor(as_rgb(image), cv2.COLOR_RGB2BGR))
        if cv2.waitKey(1) & 0xFF in (ord("q"), 27):
            raise EndOfStream

    def __exit__(self, *exc) -> None:
        cv2.destroyAllWindows()


VCAM_HELP = ("install a virtual camera: on Linux the v4l2loopback kernel module (apt install v4l2loopback-dkms; "
             "sudo modprobe v4l2loopback), on Windows/macOS OBS Studio (its virtual camera)")


def camera_frame(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """An effect's output as the RGB uint8 (height, width, 3) frame a virtual camera of `size` (width, height)
    takes: a mask as gray, alpha dropped (for_sink already turned "remove" into a screen), resized if it differs."""
    rgb = np.ascontiguousarray(as_rgb(image)[..., :3])
    if (rgb.shape[1], rgb.shape[0]) != size:
        rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
    return rgb


class VirtualCamera(Sink):
    """Frames sent to a virtual camera (pyvirtualcam: v4l2loopback on Linux, OBS on Windows/macOS) that video-call
    apps can pick. It opens at the first frame's size unless `size` (width, height) is given, at `fps`; with no
    pyvirtualcam, or no virtual camera device, a SegedgeError says what to install."""

    def __init__(self, fps: float = 30, size: tuple[int, int] | None = None, device: str | None = None):
        self.fps, self.size, self.device, self.camera = float(fps), size, device, None

    def __enter__(self):
        try:
            import pyvirtualcam  # optional: the [vcam] extra
        except ImportError:
            raise SegedgeError("--virtual-cam needs pyvirtualcam: pip install 'segedge[vcam]'") from None
        self.module = pyvirtualcam
        if self.size is not None:
            self._open(self.size)
        return self

    def _open(self, size: tuple[int, int]) -> None:
        try:
            self.camera = self.module.Camera(size[0], size[1], self.fps, device=self.device)
        except RuntimeError as exc:  # pyvirtualcam's way of saying there is no device (or it is busy)
            reason = str(exc).splitlines()[0] if str(exc) else "no virtual camera device"
            raise SegedgeError(f"no virtual camera to send to ({reason}); {VCAM_HELP}") from None
        self.size = size
        log.info("virtual camera: %s, %dx%d at %g frames/s", self.camera.device, size[0], size[1], self.fps)

    def write(self, image: np.ndarray, frame: Frame) -> None:
        if self.camera is None:
            self._open((image.shape[1], image.shape[0]))
        self.camera.send(camera_frame(image, self.size))

    def __exit__(self, *exc) -> None:
        if self.camera is not None:
            self.camera.close()


class Tee(Sink):
    """The same frames to several sinks (a preview and a virtual camera and a recording); it keeps transparency
    only if all of them do."""

    def __init__(self, *sinks: Sink):
        self.sinks = sinks
        self.alpha = all(sink.alpha for sink in sinks)

    def __enter__(self):
        self.stack = contextlib.ExitStack()
        with self.stack:
            for sink in self.sinks:
                self.stack.enter_context(sink)
            self.stack = self.stack.pop_all()
        return self

    def write(self, image: np.ndarray, frame: Frame) -> None:
        for sink in self.sinks:
            sink.write(image, frame)

    def __exit__(self, *exc):
        return self.stack.__exit__(*exc)
