"""`segedge bench`: latency, throughput, size, memory and accuracy of each backend against eager PyTorch,
measured in one run on the same inputs (warm-up first; GPU work synchronised before the clock stops).
"""

from __future__ import annotations

import csv
import importlib.metadata
import importlib.util
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from functools import partial
from pathlib import Path

import numpy as np

from segedge.backends import default_model_path, load_backend, resolve_checkpoint, resolve_model
from segedge.cpu import cpu_model, int8_saturates, isa_flags
from segedge.errors import SegedgeError
from segedge.model_files import is_format, onnx_path_for, onnx_precision, read_spec
from segedge.preprocess import to_model_input, to_probabilities
from segedge.scoring import mean_iou, person_mask, upsampling_name
from segedge.spec import ModelSpec

# Eager torch variants: keyword arguments of TorchBackend. torch-compile is opt-in (minutes of compiling on a CPU).
TORCH_VARIANTS = {"torch": {}, "torch-fp16": {"half": True}, "torch-channels-last": {"channels_last": True},
                  "torch-compile": {"compile": True}}
BACKENDS = (*TORCH_VARIANTS, "onnxruntime", "onnxruntime-fp16", "onnxruntime-int8", "tensorrt")
DEFAULT_BACKENDS = tuple(name for name in BACKENDS if name != "torch-compile")
ACCURACY_IMAGES = 16
ACCURACY_GUIDED = False  # bilinear upsampling, as `segedge eval --no-refine` and the training log: the published
# IoU/GT figures are bilinear; `segedge eval` (guided by default) scores the matte `segedge run` outputs
TURN_RUNS = 10  # timed calls per backend per turn (see time_in_turns)
TURN_PAUSE_S = 0.05  # idle gap before each turn: the previous backend's spinning worker threads go to sleep


@dataclass
class BenchOptions:
    checkpoint: Path | None = None
    engines: list[Path] = field(default_factory=list)
    backends: tuple[str, ...] = DEFAULT_BACKENDS
    size: int | None = None
    batch: int = 1
    runs: int = 50
    warmup: int = 5
    threads: int | None = None
    device: str = "auto"  # auto (CUDA when torch/onnxruntime see one, else CPU), cpu or cuda
    data: Path | None = None
    pipeline: Path | None = None


@dataclass
class Row:
    backend: str
    precision: str = ""
    device: str = ""
    input: str = ""
    batch: int = 1
    status: str = "ok"
    p50_ms: float | None = None
    p90_ms: float | None = None
    p99_ms: float | None = None
    fps: float | None = None
    speedup_vs_eager: float | None = None
    iou_vs_eager: float | None = None
    iou_vs_truth: float | None = None
    size_mb: float | None = None
    memory_mb: float | None = None  # peak resident memory above the level before this backend was loaded
    model: str = ""


def machine_info() -> dict:
    info = {"platform": platform.platform(), "python": platform.python_version(), "cores": os.cpu_count(),
            "cpu": cpu_model(), "isa": isa_flags(), "int8_kernels": "u8u8 or 7-bit weights (no VNNI)"
            if int8_saturates() else "u8s8"}
    for module in ("onnxruntime", "tensorrt"):
        try:
            info[module] = __import__(module).__version__
        except ImportError:
            pass
    try:
        info["torch"] = importlib.metadata.version("torch")  # from its metadata: machine info must not import torch
    except importlib.metadata.PackageNotFoundError:
        pass
    torch = sys.modules.get("torch")  # only when already loaded: machine info must not import torch
    if torch is not None and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
        info["cuda"] = torch.version.cuda
    return info


def _status_mb(key: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1]) / 1024  # the kernel reports kB
    raise OSError(f"{key} not in /proc/self/status")


class PeakMemory:
    """Peak resident memory (host RAM, not GPU memory) a backend adds while loading and running: the kernel's
    high-water mark VmHWM, reset through /proc/self/clear_refs so each backend starts from the current level.
    Where the reset is not allowed it falls back to the plain RSS growth; None where /proc is absent (not Linux)."""

    def __enter__(self) -> PeakMemory:
        try:
            Path("/proc/self/clear_refs").write_text("5")  # "5": reset the peak RSS to the current RSS
            self.key = "VmHWM"
        except OSError:
            self.key = "VmRSS"
        try:
            self.before = _status_mb("VmRSS")
        except OSError:
            self.before = None
        return self

    def __exit__(self, *exc) -> None:
        pass

    def growth_mb(self) -> float | None:
        if self.before is None:
            return None
        return round(max(0.0, _status_mb(self.key) - self.before), 1)


def time_in_turns(calls: dict[str, Callable[[], object]], runs: int) -> tuple[dict[str, np.ndarray], dict]:
    """Milliseconds per call for each named call, `runs` each, the calls taking turns in blocks of TURN_RUNS.

    On shared cloud cores the machine's speed drifts by tens of percent within minutes; timing each backend in
    one stretch would put that drift into the speedups. Taking turns exposes every backend to the same drift. Each
    turn starts after a short pause (thread pools of onnxruntime and OpenMP spin-wait after work; measured here,
    without it INT8 onnxruntime read 5.5 ms instead of 3.4 ms) and with one untimed call, so a backend pays neither
    for the previous one's threads nor for the caches it evicted.
    Returns the times and, for calls that raised, the exception (that call takes no further turns)."""
    times: dict[str, list[float]] = {name: [] for name in calls}
    errors: dict[str, Exception] = {}
    while any(len(times[name]) < runs for name in calls if name not in errors):
        for name, call in calls.items():
            wanted = min(TURN_RUNS, runs - len(times[name]))
            if name in errors or wanted <= 0:
                continue
            try:
                time.sleep(TURN_PAUSE_S)
                call()
                for _ in range(wanted):
                    started = time.perf_counter()
                    call()
                    times[name].append((time.perf_counter() - started) * 1000)
            except Exception as exc:  # noqa: BLE001 -- reported as this backend's failed row
                errors[name] = exc
    return {name: np.array(t) for name, t in times.items() if name not in errors}, errors


def accuracy_folder(options: BenchOptions, spec) -> Path | None:
    """--data, else the val folder recorded in the model's spec when it is on this machine, else none."""
    if options.data is not None:
        return options.data
    train = spec.training.get("data")
    if not train:
        return None
    return next((folder for folder in (Path(train).parent / "val", Path(train).parent / "test")
                 if folder.is_dir()), None)


class AccuracySet:
    """Real images and their masks for the accuracy columns, picked evenly over the folder and read once."""

    def __init__(self, options: BenchOptions, echo: Callable[[str], None]):
        self.options, self.echo = options, echo
        self.folder: Path | None = None
        self.images: list[np.ndarray] | None = None
        self.truths: list[np.ndarray] = []

    def load(self, spec) -> tuple[list[np.ndarray], list[np.ndarray]]:
        if self.images is None:
            from segedge.pairs import find_pairs, read_pair

            self.folder = accuracy_folder(self.options, spec)
            self.images = []
            if self.folder is None:
                self.echo("no real images for the accuracy columns (pass --data DIR with images/ + masks/)")
                return self.images, self.truths
            pairs = find_pairs(self.folder)
            picked = [pairs[i] for i in np.linspace(0, len(pairs) - 1, min(ACCURACY_IMAGES, len(pairs))).astype(int)]
            read = [read_pair(image, mask) for image, mask in picked]
            self.images, self.truths = [image for image, _ in read], [mask for _, mask in read]
            self.echo(f"accuracy on {len(picked)} images of {self.folder} ({upsampling_name(ACCURACY_GUIDED)} "
                      f"upsampling, as `segedge eval --no-refine` scores)")
        return self.images, self.truths


def image_masks(backend, images, size) -> list[np.ndarray]:
    """Masks at each image's own size through segedge.scoring: upsampled bilinearly (ACCURACY_GUIDED), exactly as
    `segedge eval --no-refine` and the training log score."""
    return [person_mask(backend.infer(to_model_input(image, backend.spec, size))[0, 0], backend.spec, image,
                        ACCURACY_GUIDED) for image in images]


def rounded_iou(predictions, targets) -> float | None:
    return round(float(mean_iou(predictions, targets)), 4) if targets else None


class Candidates:
    """Model files for each requested backend, exported on the fly from a checkpoint where needed."""

    def __init__(self, options: BenchOptions, workdir: Path):
        self.options, self.workdir = options, workdir
        self.onnx = next((p for p in options.engines if is_format(p, "onnxruntime") and onnx_precision(p) == "fp32"),
                         None)

    def path_for(self, name: str) -> Path:
        """The artefact to benchmark for one backend; SegedgeError says why it is skipped."""
        options = self.options
        if name in TORCH_VARIANTS:
            _require("torch", "train")
            if options.checkpoint is None:
                raise SegedgeError("needs --checkpoint CKPT.pth (or --checkpoint default): eager PyTorch runs "
                                   "PyTorch weights")
            if TORCH_VARIANTS[name].get("half") and not _torch_on_cuda(options.device):
                raise SegedgeError("fp16 eager torch needs a CUDA GPU")
            return options.checkpoint
        if name == "tensorrt":
            engine = next((p for p in options.engines if is_format(p, "tensorrt")), None)
            _require("tensorrt", "trt")
            if engine is None:
                raise SegedgeError("needs --engine MODEL.trt (build one with segedge export --format trt)")
            return engine
        if name == "onnxruntime":
            return self.fp32_onnx()
        precision = name.split("-")[1]
        given = next((p for p in options.engines if is_format(p, "onnxruntime") and onnx_precision(p) == precision),
                     None)
        if given is not None:
            return given
        fp32 = self.fp32_onnx()
        shipped = onnx_path_for(fp32, precision)
        if shipped.is_file():
            return shipped
        out = self.workdir / shipped.name
        if precision == "fp16":
            return precision_function("to_fp16")(fp32, out).path
        return precision_function("to_int8")(fp32, out, self.calibration_images()).path

    def fp32_onnx(self) -> Path:
        if self.onnx is None:
            if self.options.checkpoint is None:
                raise SegedgeError("needs an FP32 .onnx: pass --engine MODEL.onnx or --checkpoint CKPT")
            _require("torch", "train")
            from segedge.export.onnx import export_checkpoint

            self.onnx = export_checkpoint(self.options.checkpoint, self.workdir / "model.onnx",
                                          size=self.options.size, batch=self.options.batch)
        return self.onnx

    def pipeline_engine(self) -> Path:
        """The model the video pipeline runs: the FP32 ONNX when there is one, else the first --engine."""
        try:
            return self.fp32_onnx()
        except SegedgeError:
            if not self.options.engines:
                raise
            return self.options.engines[0]

    def calibration_images(self) -> list[Path]:
        """A sample of the training images recorded in the model (so accuracy is not measured on the images
        INT8 was calibrated on), else of --data."""
        from segedge.export.images import CALIB_IMAGES, image_files, recorded_folder, sample

        folder = recorded_folder(read_spec(self.fp32_onnx()), "train") or self.options.data
        if folder is None:
            raise SegedgeError("INT8 calibration needs real images: pass --data DIR (images/ + masks/)")
        return sample(image_files(folder), CALIB_IMAGES)


def precision_function(name: str):
    """segedge.export.precision.to_fp16/to_int8 (torch side; absent in a runtime-only install)."""
    try:
        from segedge.export import precision

        return getattr(precision, name)
    except (ImportError, AttributeError) as exc:
        raise SegedgeError(f"segedge.export.precision.{name} is not available ({exc}); "
                           f"pip install 'segedge[train]'") from None


def _torch_on_cuda(device: str) -> bool:
    import torch

    return device != "cpu" and torch.cuda.is_available()


def _require(module: str, extra: str) -> None:
    try:
        __import__(module)
    except ImportError:
        raise SegedgeError(f"{module} not installed (pip install 'segedge[{extra}]')") from None


def backend_request(name: str, device: str) -> str:
    """What load_backend is asked for. Torch follows --device; onnxruntime rows use its CUDA provider when asked,
    or under auto when it has one, and never its TensorRT provider (native TensorRT has its own row)."""
    if not name.startswith("onnxruntime") or device != "auto":
        return device
    import onnxruntime

    return "cuda" if "CUDAExecutionProvider" in onnxruntime.get_available_providers() else "cpu"


def open_backend(name: str, path: Path, options: BenchOptions):
    if name in TORCH_VARIANTS:
        from segedge.backends.torch import TorchBackend

        return TorchBackend(path, options.device, options.threads, **TORCH_VARIANTS[name])
    return load_backend(path, backend=backend_request(name, options.device), threads=options.threads)


@dataclass
class Loaded:
    """A backend loaded and warmed up, with its input batch and the memory loading and warm-up added."""

    name: str
    path: Path
    backend: object
    batch: np.ndarray
    memory_mb: float | None


def load_one(name: str, path: Path, options: BenchOptions) -> Loaded:
    with PeakMemory() as memory:
        backend = open_backend(name, path, options)
        height, width = (options.size, options.size) if options.size else backend.spec.input_size
        batch = np.random.default_rng(0).standard_normal((options.batch, 3, height, width)).astype(np.float32)
        for _ in range(options.warmup):
            backend.infer(batch)
        return Loaded(name, path, backend, batch, memory.growth_mb())


def make_row(loaded: Loaded, times: np.ndarray, options: BenchOptions, accuracy: AccuracySet, reference
             ) -> tuple[Row, list]:
    backend, (_, _, height, width) = loaded.backend, loaded.batch.shape
    images, truths = accuracy.load(backend.spec)
    masks = image_masks(backend, images, (height, width))
    p50, p90, p99 = (round(float(v), 2) for v in np.percentile(times, [50, 90, 99]))
    row = Row(backend=loaded.name, precision=_precision(loaded.name, backend), device=backend.device,
              input=f"{options.batch}x3x{height}x{width}", batch=options.batch, p50_ms=p50, p90_ms=p90, p99_ms=p99,
              fps=round(1000 * options.batch / p50, 1),
              iou_vs_eager=rounded_iou(masks, reference) if reference is not None else None,
              iou_vs_truth=rounded_iou(masks, truths), size_mb=round(loaded.path.stat().st_size / 2**20, 2),
              memory_mb=loaded.memory_mb, model=str(loaded.path))
    return row, masks


def _precision(name: str, backend) -> str:
    for suffix in ("fp16", "int8"):
        if name.endswith(suffix):
            return suffix
    return backend.precision


def _failed(name: str, exc: Exception, echo: Callable[[str], None], path: Path | None = None) -> Row:
    echo(f"{name}: FAILED: {_first_line(exc)}")
    return Row(backend=name, status=f"failed: {_first_line(exc)}", model=str(path or ""))


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0][:160]}" if text else type(exc).__name__


def with_models_resolved(options: BenchOptions) -> BenchOptions:
    """Embedded names turned into files. With no model given: the shipped default model, and its PyTorch weights
    when torch is installed, so eager rows (and every speedup) are there out of the box."""
    engines = [resolve_model(path) for path in options.engines]
    checkpoint = resolve_checkpoint(options.checkpoint) if options.checkpoint else None
    if not engines and checkpoint is None:
        engines = [default_model_path()]
        weights = engines[0].with_suffix(".pth")
        if weights.is_file() and importlib.util.find_spec("torch") is not None:
            checkpoint = weights
    return replace(options, engines=engines, checkpoint=checkpoint)


def check_options(options: BenchOptions) -> None:
    if not options.backends:
        raise SegedgeError(f"no backend to run; choose from {', '.join(BACKENDS)}")
    unknown = [name for name in options.backends if name not in BACKENDS]
    if unknown:
        raise SegedgeError(f"unknown backend {', '.join(unknown)}; choose from {', '.join(BACKENDS)}")
    if options.device not in ("auto", "cpu", "cuda"):
        raise SegedgeError(f"unknown device {options.device!r}; choose auto, cpu or cuda")
    for label, value, least in (("--runs", options.runs, 1), ("--warmup", options.warmup, 0),
                                ("--batch", options.batch, 1)):
        if value < least:
            raise SegedgeError(f"{label} {value} must be at least {least}")
    if options.size is not None and not ModelSpec.fits_size(options.size):
        raise SegedgeError(f"--size {options.size} must be a positive multiple of {ModelSpec.SIZE_MULTIPLE}")
    for path in [*options.engines, *([options.checkpoint] if options.checkpoint else [])]:
        if not path.is_file():
            raise SegedgeError(f"model file not found: {path}")
    if options.pipeline is not None and not options.pipeline.is_file():
        raise SegedgeError(f"video not found: {options.pipeline}")


def check_output_paths(*paths: Path | None) -> None:
    """Refuse an output in a missing folder before minutes of timing, not after."""
    for path in paths:
        if path is not None and not Path(path).parent.is_dir():
            raise SegedgeError(f"cannot write {path}: folder {Path(path).parent} does not exist")


def run_bench(options: BenchOptions, echo: Callable[[str], None] = print) -> tuple[list[Row], dict | None]:
    """Rows for each requested backend (skipped or failed ones say why), and the video pipeline timing if asked.

    Eager torch goes first when asked for, so every other row's speedup and mask agreement are against it."""
    options = with_models_resolved(options)
    check_options(options)
    names = sorted(options.backends, key=lambda name: name != "torch")
    accuracy = AccuracySet(options, echo)
    rows: dict[str, Row] = {}
    loaded: dict[str, Loaded] = {}
    with tempfile.TemporaryDirectory(prefix="segedge-bench-") as workdir:
        candidates = Candidates(options, Path(workdir))
        for name in names:
            try:
                path = candidates.path_for(name)
            except SegedgeError as exc:
                rows[name] = Row(backend=name, status=f"skipped: {exc}")
                echo(f"{name}: skipped: {exc}")
                continue
            try:
                loaded[name] = load_one(name, path, options)
            except Exception as exc:  # noqa: BLE001 -- one backend failing must not hide the others' numbers
                rows[name] = _failed(name, exc, echo, path)
        times, errors = time_in_turns({name: partial(item.backend.infer, item.batch)
                                       for name, item in loaded.items()}, options.runs)
        reference = None
        for name, item in loaded.items():
            try:
                if name in errors:
                    raise errors[name]
                rows[name], masks = make_row(item, times[name], options, accuracy, reference)
            except Exception as exc:  # noqa: BLE001
                rows[name] = _failed(name, exc, echo, item.path)
                continue
            if name == "torch":
                reference = masks
                rows[name].iou_vs_eager = 1.0 if masks else None
            echo(f"{name}: {rows[name].p50_ms} ms p50 ({rows[name].device}, {rows[name].precision})")
        loaded.clear()  # free the models before the pipeline loads its own
        pipeline = bench_pipeline(candidates.pipeline_engine(), options.pipeline, options.threads) \
            if options.pipeline else None
    rows = [rows[name] for name in names]
    eager = next((r for r in rows if r.backend == "torch" and r.status == "ok"), None)
    for row in rows:
        if eager and row.status == "ok":
            row.speedup_vs_eager = round(eager.p50_ms / row.p50_ms, 2)
    return rows, pipeline


def format_table(rows: list[Row]) -> str:
    """An Ultralytics-style table: format, status, size, accuracy, latency, throughput, speedup (plain ASCII, so
    any terminal encoding prints it)."""
    columns = (("Format", "<18"), ("Status", "<7"), ("Device", "<6"), ("Size MB", ">8"), ("IoU/eager", ">9"),
               ("IoU/GT", ">7"), ("ms/img", ">8"), ("p99 ms", ">8"), ("FPS", ">7"), ("Speedup", ">8"),
               ("Mem MB", ">7"))
    header = " ".join(format(name, align) for name, align in columns)
    lines = [header, "-" * len(header)]

    def cell(value, spec):
        return format(value, spec) if value is not None else "-"

    for row in rows:
        ok = row.status == "ok"
        values = (row.backend, row.status.split(":")[0], row.device or "-", cell(row.size_mb, ".1f"),
                  cell(row.iou_vs_eager, ".4f"), cell(row.iou_vs_truth, ".4f"),
                  cell(row.p50_ms / row.batch if ok else None, ".2f"),
                  cell(row.p99_ms / row.batch if ok else None, ".2f"), cell(row.fps, ".1f"),
                  cell(row.speedup_vs_eager, ".2f"), cell(row.memory_mb, ".0f"))
        lines.append(" ".join(format(value, align) for value, (_, align) in zip(values, columns, strict=True)))
    not_run = [f"  {row.backend}: {row.status}" for row in rows if row.status != "ok"]
    return "\n".join(lines + (["", "Not measured:", *not_run] if not_run else []))


def write_json(rows: list[Row], path: Path, extra: dict | None = None) -> None:
    """{"machine": {...}, "rows": [...], plus `extra` (options, pipeline)}."""
    payload = {"machine": machine_info(), "rows": [asdict(r) for r in rows], **(extra or {})}
    Path(path).write_text(json.dumps(payload, indent=2, default=str) + "\n")


def write_csv(rows: list[Row], path: Path) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(asdict(rows[0])))
        writer.writeheader()
        writer.writerows(asdict(r) for r in rows)


def write_plot(rows: list[Row], path: Path, title: str = "segedge bench") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    measured = [r for r in rows if r.status == "ok"]
    fig, axis = plt.subplots(figsize=(7, 3.5))
    bars = axis.barh([f"{r.backend} ({r.device})" for r in measured], [r.p50_ms / r.batch for r in measured],
                     color="#4c72b0")
    for bar, row in zip(bars, measured, strict=True):
        label = f"{row.p50_ms / row.batch:.1f} ms" + (f"  x{row.speedup_vs_eager}" if row.speedup_vs_eager else "")
        axis.text(bar.get_width(), bar.get_y() + bar.get_height() / 2, " " + label, va="center")
    axis.set_xlabel("median latency per image (ms), lower is better")
    axis.set_title(title)
    axis.invert_yaxis()
    axis.margins(x=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


PIPELINE_ROUNDS = 3  # sequential and threaded passes alternate, so machine drift hits both alike
STAGES = ("decode", "preprocess", "inference", "refine+composite", "encode")


def bench_pipeline(engine: Path | None, video: Path, threads: int | None = None, effect: str = "blur") -> dict:
    """Where the time goes in the video pipeline: each stage timed on its own (sequential pass), then the real
    threaded pipeline's frames/s against model-only frames/s, in alternating rounds (medians reported)."""
    from segedge.runtime import Segmenter
    from segedge.video import process_video

    segmenter = Segmenter(engine, "auto", threads)
    stages = dict.fromkeys(STAGES, 0.0)
    model_fps, pipeline_fps = [], []
    with tempfile.TemporaryDirectory(prefix="segedge-pipeline-") as workdir:
        for _ in range(PIPELINE_ROUNDS):
            seconds, frames = _sequential_pass(segmenter, video, Path(workdir) / f"out{video.suffix}", effect)
            stages = {k: stages[k] + seconds[k] for k in STAGES}
            model_fps.append(frames / seconds["inference"])
            pipeline_fps.append(process_video(segmenter, video, Path(workdir) / f"threaded{video.suffix}",
                                              effect=effect, quiet=True).fps)
    total, all_frames = sum(stages.values()), frames * PIPELINE_ROUNDS
    return {
        "video": str(video), "frames": frames, "rounds": PIPELINE_ROUNDS, "model": segmenter.backend.describe(),
        "stage_ms_per_frame": {k: round(1000 * v / all_frames, 2) for k, v in stages.items()},
        "stage_share": {k: round(v / total, 3) for k, v in stages.items()},
        "sequential_fps": round(all_frames / total, 1), "model_only_fps": round(float(np.median(model_fps)), 1),
        "pipeline_fps": round(float(np.median(pipeline_fps)), 1),
        "pipeline_vs_model": round(float(np.median(np.divide(pipeline_fps, model_fps))), 3),
        "rounds_fps": [{"model_only": round(m, 1), "pipeline": round(q, 1)} for m, q in zip(model_fps, pipeline_fps,
                                                                                           strict=True)],
    }


def _sequential_pass(segmenter, video: Path, out_path: Path, effect: str) -> tuple[dict[str, float], int]:
    """Seconds spent in each stage over the whole video with the stages run one after another, and the frame count."""
    import av
    from av.video.reformatter import VideoReformatter

    from segedge.effects import apply_effect
    from segedge.media import upright
    from segedge.runtime import model_size

    stages, frames = dict.fromkeys(STAGES, 0.0), 0
    with av.open(str(video)) as source, av.open(str(out_path), "w") as sink:
        stream = None
        decoder, reformatter = source.decode(video=0), VideoReformatter()
        while True:
            started = time.perf_counter()
            frame = next(decoder, None)
            if frame is None:
                break
            rgb = upright(frame, reformatter)
            stages["decode"] += time.perf_counter() - started
            started = time.perf_counter()
            tensor = to_model_input(rgb, segmenter.spec, model_size(rgb.shape[:2], segmenter.spec))
            stages["preprocess"] += time.perf_counter() - started
            started = time.perf_counter()
            output = segmenter.backend.infer(tensor)[0, 0]
            stages["inference"] += time.perf_counter() - started
            started = time.perf_counter()
            prob = to_probabilities(output, segmenter.spec)
            image = apply_effect(rgb, segmenter.to_matte(prob, rgb), effect)
            stages["refine+composite"] += time.perf_counter() - started
            started = time.perf_counter()
            if stream is None:
                stream = sink.add_stream("libx264", rate=30)
                stream.width, stream.height, stream.pix_fmt = rgb.shape[1] // 2 * 2, rgb.shape[0] // 2 * 2, "yuv420p"
            sink.mux(stream.encode(av.VideoFrame.from_ndarray(
                np.ascontiguousarray(image[:stream.height, :stream.width]), format="rgb24")))
            stages["encode"] += time.perf_counter() - started
            frames += 1
        if stream is not None:
            sink.mux(stream.encode(None))
    if frames == 0:
        raise SegedgeError(f"video {video} has no frames")
    return stages, frames


def format_pipeline(result: dict) -> str:
    lines = [f"video pipeline on {result['video']} ({result['frames']} frames, {result['model']})"]
    for stage, ms in result["stage_ms_per_frame"].items():
        lines.append(f"  {stage:<17} {ms:8.2f} ms/frame  {100 * result['stage_share'][stage]:5.1f}%")
    lines.append(f"  threaded pipeline {result['pipeline_fps']} frames/s vs model alone {result['model_only_fps']} "
                 f"frames/s ({100 * result['pipeline_vs_model']:.0f}%)")
    return "\n".join(lines)
