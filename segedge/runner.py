"""`segedge run` as a library function: resolve the input kind and output path, then stream it through a Segmenter."""

from __future__ import annotations

import glob
import logging
from dataclasses import dataclass
from pathlib import Path

from segedge.effects import DEFAULT_BLUR, EFFECTS, apply_effect, parse_color
from segedge.errors import SegedgeError
from segedge.media import (
    IMAGE_EXTENSIONS,
    VIDEO_EXTENSIONS,
    OutputFull,
    expand_images,
    read_alpha,
    read_image,
    write_image,
)

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
    threads: int | None = None
    quiet: bool = False


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


def load_background(text: str | None):
    if text is None:
        return None
    return read_image(text) if Path(text).is_file() else parse_color(text)


def _check_distinct(source: Path, target: Path) -> None:
    if target.exists() and target.resolve() == source.resolve():
        raise SegedgeError(f"output {target} is the input; choose another -o so the input is never overwritten")


def run(options: RunOptions) -> Path | None:
    """Process an image, folder, video or webcam; returns the output path (None for a webcam shown on screen)."""
    if options.effect not in EFFECTS:
        raise SegedgeError(f"unknown effect {options.effect!r}; choose one of {', '.join(EFFECTS)}")
    kind = input_kind(options.input)
    background = load_background(options.background)
    target = Path(options.output) if options.output else None
    if kind != "webcam":
        target = resolve_output(options.input, kind, options.effect, target)
        _check_distinct(Path(options.input), target)

    from segedge.runtime import Segmenter

    segmenter = Segmenter(options.engine, options.backend, options.threads)
    if not options.quiet:
        log.info("model: %s", segmenter.backend.describe())
    effect_args = dict(effect=options.effect, background=background, blur_strength=options.blur_strength)
    if kind == "image":
        frame = read_image(options.input)
        return write_image(target, _image_effect(segmenter, Path(options.input), frame, options.threshold, effect_args))
    if kind == "folder":
        return _run_folder(segmenter, options, target, effect_args)
    if kind == "video":
        from segedge.video import process_video

        stats = process_video(segmenter, options.input, target, threshold=options.threshold, smooth=options.smooth,
                              quiet=options.quiet, **effect_args)
        if not options.quiet:
            log.info("%d frames in %.1f s (%.1f frames/s)", stats.frames, stats.seconds, stats.fps)
        return target
    from segedge.webcam import run_webcam

    return run_webcam(segmenter, int(options.input), target, threshold=options.threshold, smooth=options.smooth,
                      **effect_args)


def _image_effect(segmenter, path: Path, frame, threshold: float | None, effect_args: dict):
    """One image through the model and the effect; a cut-out keeps the image's own transparency too."""
    matte = segmenter.mask(frame, threshold)
    alpha = read_alpha(path) if effect_args["effect"] == "remove" else None
    if alpha is not None and alpha.shape != matte.shape:  # EXIF turned the colours, not the alpha (read raw)
        log.warning("WARNING: %s: its own transparency is left out (the EXIF orientation turned the image)", path)
    elif alpha is not None:
        matte = matte * alpha
    return apply_effect(frame, matte, **effect_args)


def _make_folder(target: Path) -> None:
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SegedgeError(f"cannot create output folder {target}: {exc.strerror}") from None


def _run_folder(segmenter, options: RunOptions, target: Path, effect_args: dict) -> Path:
    """Every image of a folder/glob into `target`/ under the same names; unreadable ones reported and skipped.
    A full disk stops the run, saying how many images were written."""
    images = expand_images(options.input)
    created = not target.exists()
    _make_folder(target)
    failed, written = [], 0
    from tqdm import tqdm  # here, not at import: tqdm reads package metadata, a cost one-photo runs need not pay

    for path in tqdm(images, unit="img", disable=options.quiet):
        out = target / f"{path.stem}{image_suffix(path, options.effect)}"
        _check_distinct(path, out)
        try:
            frame = read_image(path)
        except SegedgeError as exc:
            log.warning("skipped: %s", exc)
            failed.append(path)
            continue
        try:
            write_image(out, _image_effect(segmenter, path, frame, options.threshold, effect_args))
        except OutputFull as exc:
            if created and not written:
                target.rmdir()
            raise OutputFull(f"{exc}; {written} of {len(images)} images were written to {target}") from None
        written += 1
    if len(failed) == len(images):
        if created:
            target.rmdir()  # nothing was written: leave no empty output folder behind
        raise SegedgeError(f"none of the {len(images)} images in {options.input} could be read")
    return target
