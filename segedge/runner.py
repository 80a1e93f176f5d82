"""`segedge run` as a library function: resolve the input kind and output path, then stream it through a Segmenter."""

from __future__ import annotations

import glob
import logging
from dataclasses import dataclass
from pathlib import Path

from segedge.effects import DEFAULT_BLUR, Effect
from segedge.errors import SegedgeError
from segedge.media import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS, OutputFull, expand_images
from segedge.stream import VIDEO, ImageFile, ImageFolder, Images, Speed, stream
from segedge.stream.sinks import check_distinct

log = logging.getLogger("segedge")


@dataclass
class RunOptions:
    input: str
    output: str | None = None
    engine: str | None = None
    effect: str = "blur"
    background: str | None = None
    backend: str = "auto"
    threshold: float | None = None
    smooth: float = 0.5
    blur_strength: int = DEFAULT_BLUR
    clean_edges: bool | None = None  # foreground colour estimation in the soft edge; None: clean_edges_for's choice
    threads: int | None = None
    quiet: bool = False
    camera_size: str | None = None  # "1280x720"
    camera_fps: float | None = None
    live: bool = False  # a video file played as a camera (real time, newest frame only)
    virtual_cam: bool = False
    preview: bool = False
    preview_port: int = 0
    model_every: int | None = None  # video and live: the model sees every n-th frame; None: model_every_for's choice
    tta: bool = False  # mirror test-time augmentation: the model also sees each frame mirrored (2x its time)


LIVE_ENGINE = "fast"  # a live source's model when none is named: 4x less time than default, 0.004 IoU on portraits


def input_kind(source: str) -> str:
    """'webcam', 'folder', 'image' or 'video'; a clear error for anything else."""
    if source.isdigit():
        return "webcam"
    path = Path(source)
    if path.is_dir() or (not path.exists() and glob.has_magic(source)):
        return "folder"
    if not path.exists():
        raise SegedgeError(f"input not found: {source}")
    suffix = path.suffix.lower()
    if suffix in IMAGE_EXTENSIONS:
        return "image"
    if suffix in VIDEO_EXTENSIONS:
        return "video"
    raise SegedgeError(f"{source}: unsupported file type {suffix or '(no extension)'}; expected an image "
                       f"({', '.join(IMAGE_EXTENSIONS)}) or a video ({', '.join(VIDEO_EXTENSIONS)})")


def parse_size(text: str | None) -> tuple[int, int] | None:
    """'1280x720' -> (1280, 720)."""
    if text is None:
        return None
    width, _, height = text.lower().partition("x")
    if not (width.isdigit() and height.isdigit() and int(width) > 0 and int(height) > 0):
        raise SegedgeError(f"--camera-size {text!r}: expected WIDTHxHEIGHT, e.g. 1280x720")
    return int(width), int(height)


def check_live_options(options: RunOptions, kind: str) -> None:
    """Live-only options on a file (not played --live) would do nothing: say so instead."""
    live_only = {"--virtual-cam": options.virtual_cam, "--preview": options.preview,
                 "--camera-size": options.camera_size, "--camera-fps": options.camera_fps}
    if kind == "webcam" or options.live:
        if options.live and kind != "video":
            raise SegedgeError(f"--live plays a video file as a camera; {options.input} is not a video file")
        return
    for flag, value in live_only.items():
        if value:
            raise SegedgeError(f"{flag} needs a live source: a webcam index (0) or a video file with --live")


def image_suffix(source: Path, effect: str) -> str:
    """Cut-outs need an alpha channel: PNG unless the input format already carries one."""
    if effect == "remove" and source.suffix.lower() not in (".png", ".webp"):
        return ".png"
    return source.suffix


def default_output(source: str, kind: str, effect: str) -> Path:
    """Beside the input with the effect as suffix: clip.mp4 -> clip_blur.mp4, photos/ -> photos_blur/."""
    if kind == "folder":
        base = Path(source) if Path(source).is_dir() else Path(glob.escape(source)).parent
        return base.with_name(f"{base.name}_{effect}")
    path = Path(source)
    suffix = image_suffix(path, effect) if kind == "image" else path.suffix
    return path.with_name(f"{path.stem}_{effect}{suffix}")


def resolve_output(source: str, kind: str, effect: str, target: Path | None) -> Path:
    """-o as given; an existing folder for a single image or video means "the default name inside it"."""
    if target is None:
        return default_output(source, kind, effect)
    if kind in ("image", "video") and target.is_dir():
        return target / default_output(source, kind, effect).name
    if kind == "folder" and target.exists() and not target.is_dir():
        raise SegedgeError(f"output {target} is a file; a folder of images needs an output folder")
    return target


def clean_edges_for(options: RunOptions, kind: str) -> bool:
    """--clean-edges as given; by default on for photos, off for video and live sources, where its ~18 ms per 720p
    frame on 2 cores (benchmarks/results/edge_colour.md) does not fit a 30 frames/s budget."""
    if options.clean_edges is not None:
        return options.clean_edges
    return kind in ("image", "folder") and not options.live


LIVE_MODEL_EVERY = 2  # a live source's model rate when none is given: 17.0 -> 26.2 frames/s at 720p, latency
# p50 76 -> 47 ms (medians), and on 24 frames/s head-and-shoulders footage it lags about as far as the temporal
# smoothing does (benchmarks/results/live_pipeline.md)


def model_every_for(options: RunOptions, live: bool) -> int:
    """--model-every as given; by default every 2nd frame for live sources (a call must keep up with the camera),
    every frame for files (offline: exactness first)."""
    if options.model_every is not None:
        return options.model_every
    return LIVE_MODEL_EVERY if live else 1


def run(options: RunOptions) -> Path | None:
    """Process an image, folder, video or webcam; returns the output path (None for a webcam shown on screen)."""
    kind = input_kind(options.input)
    effect = Effect(options.effect, options.background, options.blur_strength, clean_edges_for(options, kind))
    check_live_options(options, kind)
    camera_size = parse_size(options.camera_size)
    live = kind == "webcam" or options.live
    speed = Speed(model_every_for(options, live), VIDEO.refine_pixels)  # checked before a model loads
    target = Path(options.output) if options.output else None
    if kind != "webcam" and not options.live:
        target = resolve_output(options.input, kind, options.effect, target)
        check_distinct(Path(options.input), target)

    from segedge.runtime import Segmenter

    segmenter = Segmenter(options.engine or (LIVE_ENGINE if live else None), options.backend, options.threads,
                          tta=options.tta)
    if not options.quiet:
        log.info("model: %s", segmenter.describe())
    if live:
        return _run_live(segmenter, options, effect, target, camera_size, speed)
    if kind == "image":
        with Images([Path(options.input)], keep_alpha=effect.name == "remove") as source, ImageFile(target) as sink:
            stream(source, segmenter, sink, effect, options.threshold)
        return target
    if kind == "folder":
        return _run_folder(segmenter, options, effect, target)
    if kind == "video":
        from segedge.video import process_video

        stats = process_video(segmenter, options.input, target, effect, options.threshold, options.smooth,
                              options.quiet, speed=speed)
        if not options.quiet:
            log.info("%d frames in %.1f s (%.1f frames/s)", stats.frames, stats.seconds, stats.fps)
        return target
    raise AssertionError(f"unhandled input kind {kind}")


def _run_live(segmenter, options: RunOptions, effect: Effect, target: Path | None,
              camera_size: tuple[int, int] | None, speed: Speed) -> Path | None:
    """A webcam, or a video file played --live, into a window, preview, virtual camera and/or recording."""
    from segedge.stream import Camera
    from segedge.stream.sources import LiveVideo
    from segedge.webcam import LiveOutputs, run_live

    if options.live:
        def open_source():
            return LiveVideo(Path(options.input))
    else:
        def open_source():
            return Camera.open(int(options.input), camera_size, options.camera_fps)
    outputs = LiveOutputs(target, options.virtual_cam, options.preview, options.preview_port)
    stats = run_live(segmenter, open_source, outputs, effect, options.threshold, options.smooth, options.quiet,
                     speed)
    if not options.quiet:
        log.info("%s", stats.summary())
    return target


def _run_folder(segmenter, options: RunOptions, effect: Effect, target: Path) -> Path:
    """Every image of a folder/glob into `target`/ under the same names; unreadable ones reported and skipped.
    A full disk stops the run, saying how many images were written."""
    images = Images(expand_images(options.input), skip_unreadable=True, keep_alpha=effect.name == "remove")
    with images, ImageFolder(target, lambda path: image_suffix(path, effect.name)) as sink:
        try:
            stream(images, segmenter, sink, effect, options.threshold, quiet=options.quiet)
        except OutputFull as exc:
            raise OutputFull(f"{exc}; {sink.written} of {images.total} images were written to {target}") from None
    if len(images.failed) == images.total:
        raise SegedgeError(f"none of the {images.total} images in {options.input} could be read")
    return target
