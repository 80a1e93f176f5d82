"""`segedge run SOURCE --ray`: many images and videos on a Ray cluster (the [ray] extra), written exactly as a plain
`segedge run` writes them.

Images stream through Ray Data's `map_batches` into a fixed pool of actors, each holding one Segmenter for its life;
an actor runs its batch through the same `stream()` and `ImageFolder` sink as a folder run, so the outputs keep
the same names, are each written atomically and are byte-identical. Videos go one per Ray task through
`process_video`. An input that fails is reported and the others go on; an output that already exists is skipped,
so rerunning the same command resumes an interrupted job.

Inputs and outputs are paths every node can reach (a local disk on one machine, a shared filesystem on a cluster),
or URIs of any filesystem pyarrow reads (s3://, gs://, hdfs://, file://; see segedge.remote): images are read as
bytes, videos staged to a local temp file per task, and outputs written beside their target under a temp name and
then moved onto it.
"""

from __future__ import annotations

import glob
import logging
import math
from collections import defaultdict
from dataclasses import dataclass, field, replace
from pathlib import Path

from segedge.effects import Effect
from segedge.errors import SegedgeError
from segedge.media import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS
from segedge.remote import (
    AnyImages,
    Location,
    Remote,
    RemoteImageFolder,
    is_uri,
    listed,
    local_copy,
    local_output,
    remote_candidates,
)
from segedge.runner import RunOptions, check_live_options, clean_edges_for, default_output, image_suffix
from segedge.stream import ImageFolder, stream

log = logging.getLogger("segedge")
MEDIA_EXTENSIONS = IMAGE_EXTENSIONS + VIDEO_EXTENSIONS
MAX_BATCH = 16  # images per actor call: enough to amortise Ray's per-batch cost, small enough to spread the work


@dataclass(frozen=True)
class Job:
    """What every worker needs to segment and write an input (pickled to the actors and tasks)."""

    target: Location
    effect: Effect  # built on the driver: a --background image is read there and shipped with the job
    engine: str | None = None
    backend: str = "auto"
    threads: int | None = None
    threshold: float | None = None
    smooth: float = 0.5
    video_clean_edges: bool = False  # what a plain video run picks (runner.clean_edges_for); images: effect's
    tta: bool = False

    def segmenter(self):
        from segedge.runtime import Segmenter

        return Segmenter(self.engine, self.backend, self.threads, tta=self.tta)

    def image_folder(self) -> ImageFolder:
        """The folder sink of a plain folder run, with its names."""
        folder = RemoteImageFolder if isinstance(self.target, Remote) else ImageFolder
        return folder(self.target, lambda path: image_suffix(path, self.effect.name))

    def video_output(self, source: Location) -> Location:
        """The name a plain `segedge run VIDEO -o FOLDER` gives it: clip.mp4 -> FOLDER/clip_blur.mp4."""
        return self.target / default_output(str(source), "video", self.effect.name).name


@dataclass
class Summary:
    target: Path
    done: list[Path] = field(default_factory=list)
    skipped: dict[Path, str] = field(default_factory=dict)
    failed: dict[Path, str] = field(default_factory=dict)

    def add(self, path: Path, error: str) -> None:
        if error:
            self.failed[path] = error
        else:
            self.done.append(path)

    def lines(self, examples: int = 3) -> list[str]:
        """A count line, the skip reasons with a few of their inputs, then every failure with its reason."""
        lines = [f"{len(self.done)} done, {len(self.skipped)} skipped, {len(self.failed)} failed -> {self.target}"]
        by_reason = defaultdict(list)
        for path, reason in self.skipped.items():
            by_reason[reason].append(path.name)
        for reason, names in by_reason.items():
            more = f" and {len(names) - examples} more" if len(names) > examples else ""
            lines.append(f"skipped ({reason}): {', '.join(names[:examples])}{more}")
        lines += [f"failed: {path}: {reason}" for path, reason in self.failed.items()]
        return lines


def one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text if isinstance(exc, SegedgeError) else f"{type(exc).__name__}: {text}"


def list_inputs(source: str) -> list[Location]:
    """A folder's images and videos (sorted), a glob's, or the paths a text file lists (one per line; blank lines
    and # comments ignored; URIs as they are, other paths relative to the list's folder). `source` may be a URI."""
    if is_uri(source):
        remote, files = remote_candidates(source)
        if files is not None:
            return media_only(files, source)
        return [remote] if remote.suffix.lower() in MEDIA_EXTENSIONS else list_file(remote, source)
    path = Path(source)
    if path.is_file() and path.suffix.lower() not in MEDIA_EXTENSIONS:
        return list_file(path, source)
    if path.is_file():
        return [path]
    files = sorted(path.iterdir()) if path.is_dir() else sorted(Path(p) for p in glob.glob(source))
    return media_only([p for p in files if p.is_file()], source)


def list_file(path: Location, source: str) -> list[Location]:
    paths = listed(path.read_text(encoding="utf-8"), path.parent)
    if not paths:
        raise SegedgeError(f"{source} lists no files")
    return paths


def media_only(files: list[Location], source: str) -> list[Location]:
    media = [p for p in files if p.suffix.lower() in MEDIA_EXTENSIONS]
    if not media:
        raise SegedgeError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) or videos ({', '.join(VIDEO_EXTENSIONS)}) "
                           f"in {source}")
    return media


def output_folder(source: str, output: str | None, effect: str) -> Location:
    """-o, else beside the source: photos/ -> photos_blur/, list.txt -> list_blur/ (URIs alike)."""
    if output:
        target = Remote.from_uri(output) if is_uri(output) else Path(output)
    elif is_uri(source):
        target = remote_output_folder(Remote.from_uri(source), effect)
    elif Path(source).is_file():
        target = Path(source).with_name(f"{Path(source).stem}_{effect}")
    else:
        target = default_output(source, "folder", effect)
    if target.exists() and not target.is_dir():
        raise SegedgeError(f"output {target} is a file; --ray writes into an output folder")
    return target


def remote_output_folder(source: Remote, effect: str) -> Remote:
    """What output_folder picks beside a URI source: list.txt -> list_blur, photos -> photos_blur, photos/*.jpg ->
    photos_blur (default_output's names)."""
    if source.is_file():
        return source.with_name(f"{source.stem}_{effect}")
    base = source.parent if glob.has_magic(source.path) else source
    return base.with_name(f"{base.name}_{effect}")


def output_exists(target: Location):
    """How plan() asks whether an output exists: each file of a local folder on its own (as ever); a remote folder
    listed once, not one request per input."""
    if not isinstance(target, Remote):
        return lambda output: output.exists()
    existing = {file.path for file in target.files()}
    return lambda output: output.path in existing


def plan(inputs: list[Location], job: Job, summary: Summary) -> tuple[list[Location], list[tuple[Location, Location]]]:
    """(images to segment, (video, output) pairs to segment); the rest go into summary.skipped with the reason:
    the output exists already (resume), another input has the same output name, or it is neither kind."""
    images, videos, claimed = [], [], {}
    folder, exists = job.image_folder(), output_exists(job.target)
    for path in inputs:
        suffix = path.suffix.lower()
        if suffix not in MEDIA_EXTENSIONS:
            summary.skipped[path] = "not an image or video file"
            continue
        output = folder.output(path) if suffix in IMAGE_EXTENSIONS else job.video_output(path)
        if output in claimed:
            summary.skipped[path] = f"same output name as {claimed[output]}"
        elif exists(output):
            summary.skipped[path] = "output exists"
        else:
            claimed[output] = path
            if suffix in IMAGE_EXTENSIONS:
                images.append(path)
            else:
                videos.append((path, output))
    return images, videos


def as_row(path: Location) -> dict:
    """An input as a Ray Data row: its filesystem's root ("" for a local path) and its path there."""
    return {"root": path.root, "path": path.path} if isinstance(path, Remote) else {"root": "", "path": str(path)}


def from_row(root: str, path: str) -> Location:
    return Remote(root, path) if root else Path(path)


class SegmentImages:
    """A Ray Data actor: one Segmenter for its life; each batch of image paths goes through the folder run's
    stream and sink. Returns each path with its error ("" when written)."""

    def __init__(self, job: Job):
        self.job, self.segmenter = job, job.segmenter()

    def __call__(self, batch: dict) -> dict:
        paths = [from_row(root, path) for root, path in zip(batch["root"], batch["path"], strict=True)]
        errors = self.segment(paths)
        return {**batch, "error": [errors.get(p, "") for p in paths]}

    def segment(self, paths: list[Location]) -> dict[Location, str]:
        images = AnyImages(paths, skip_unreadable=True, keep_alpha=self.job.effect.name == "remove")
        sink = self.job.image_folder()
        try:
            with images, sink:
                stream(images, self.segmenter, sink, self.job.effect, self.job.threshold)
            return images.errors
        except Exception as exc:  # reported per input, never lost
            if len(paths) == 1:
                return {paths[0]: one_line(exc)}
        # one input broke the batch: the unwritten ones again one at a time, so only that one fails
        errors = {}
        for path in paths:
            if not sink.output(path).exists():
                errors.update(self.segment([path]))
        return errors


def segment_video(job: Job, source: Location, target: Location) -> str:
    """A Ray task: one video, as `segedge run VIDEO` does it (a remote one through local temp files); its error in
    one line, "" when written."""
    from segedge.video import process_video

    try:
        effect = replace(job.effect, clean_edges=job.video_clean_edges)
        with local_copy(source) as local_source, local_output(target) as local_target:
            process_video(job.segmenter(), local_source, local_target, effect, job.threshold, job.smooth, quiet=True)
    except Exception as exc:  # reported per input, never lost
        return one_line(exc)
    return ""


def run_on_ray(options: RunOptions, address: str | None = None, actors: int = 1) -> Summary:
    """Segment every image and video of `options.input` on Ray (`address`, or a local Ray started here) with
    `actors` model actors for the images; returns what was done, skipped (and why) and failed (and why)."""
    from segedge.backends import resolve_model
    from segedge.ray_cluster import (
        connected,
        cpus_per_worker,
        gpus_per_worker,
        portable_engine,
        require_ray,
        warn_if_short_of_gpus,
    )
    from segedge.runtime import check_threshold

    require_ray("data")
    if actors < 1:
        raise SegedgeError(f"--actors {actors}: give at least 1")
    if options.input.isdigit() or options.live:
        raise SegedgeError("--ray takes a folder, a glob or a list of images and videos, not a live source")
    check_live_options(options, "folder")
    check_threshold(options.threshold)
    if not resolve_model(options.engine).is_file():
        raise SegedgeError(f"model file not found: {options.engine}")
    if Path(options.input).is_file() and Path(options.input).suffix.lower() in MEDIA_EXTENSIONS:
        log.info("one file: plain `segedge run` does the same without starting Ray")
    # absolute paths: Ray workers do not start in this folder
    job = Job(output_folder(options.input, options.output, options.effect).absolute(),
              Effect(options.effect, options.background, options.blur_strength, clean_edges_for(options, "folder")),
              portable_engine(options.engine), options.backend, options.threads, options.threshold, options.smooth,
              clean_edges_for(options, "video"), options.tta)
    summary = Summary(job.target)
    images, videos = plan([path.absolute() for path in list_inputs(options.input)], job, summary)
    if not (images or videos):
        return summary
    job.target.mkdir(parents=True, exist_ok=True)
    gpus = gpus_per_worker(options.engine, options.backend)
    with connected(address, options.quiet):
        import ray

        cpus, threads = cpus_per_worker(actors, options.threads)
        warn_if_short_of_gpus(actors if images else 1, gpus, ray.cluster_resources().get("GPU", 0.0))
        # CPU threads only for a model on the CPU (a TensorRT engine refuses any)
        job = replace(job, threads=options.threads if gpus else threads)
        resources = {"num_cpus": cpus, "num_gpus": gpus}
        if images:
            _segment_images(images, job, actors, resources, summary, options.quiet)
        if videos:
            _segment_videos(videos, job, resources, summary, options.quiet)
    return summary


def _segment_images(images: list[Location], job: Job, actors: int, resources: dict, summary: Summary,
                    quiet: bool) -> None:
    import ray

    ray.data.DataContext.get_current().enable_progress_bars = not quiet
    if quiet:
        logging.getLogger("ray.data").setLevel(logging.WARNING)  # its "starting/finished execution" lines
    batch = max(1, min(MAX_BATCH, len(images) // (4 * actors)))  # at least 4 batches per actor to balance them
    items = ray.data.from_items([as_row(path) for path in images], override_num_blocks=math.ceil(len(images) / batch))
    results = items.map_batches(SegmentImages, fn_constructor_kwargs={"job": job}, batch_size=batch,
                                compute=ray.data.ActorPoolStrategy(size=actors), **resources)
    reported = set()
    try:
        for row in results.iter_rows():
            path = from_row(row["root"], row["path"])
            summary.add(path, row["error"])
            reported.add(path)
    except Exception as exc:  # Ray itself failed (e.g. an actor died): say which inputs it took
        for path in images:
            if path not in reported:
                summary.add(path, f"Ray Data: {one_line(exc)}")


def _segment_videos(videos: list[tuple[Location, Location]], job: Job, resources: dict, summary: Summary,
                    quiet: bool) -> None:
    import ray
    from tqdm import tqdm

    task = ray.remote(segment_video).options(max_retries=0, **resources)
    pending = {task.remote(job, source, target): source for source, target in videos}
    with tqdm(total=len(videos), unit="video", disable=quiet) as bar:
        while pending:
            (ready,), _ = ray.wait(list(pending), num_returns=1)
            source = pending.pop(ready)
            try:
                summary.add(source, ray.get(ready))
            except ray.exceptions.RayError as exc:  # the worker died (out of memory, a crash in a decoder)
                summary.add(source, one_line(exc))
            bar.update(1)
