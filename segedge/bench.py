"""`segedge bench`: latency, throughput, size, memory and accuracy of each backend against eager PyTorch,
measured in one run on the same inputs (warm-up first; GPU work synchronised before the clock stops).
"""

from __future__ import annotations

import csv
import json
import os
import platform
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from segedge.backends import default_model_path, load_backend
from segedge.errors import SegedgeError
from segedge.media import read_image
from segedge.metrics import mask_metrics
from segedge.preprocess import sigmoid, to_model_input

BACKENDS = ("torch", "onnxruntime", "onnxruntime-fp16", "onnxruntime-int8", "tensorrt")
ACCURACY_IMAGES = 16


@dataclass
class BenchOptions:
    checkpoint: Path | None = None
    engines: list[Path] = field(default_factory=list)
    backends: tuple[str, ...] = BACKENDS
    size: int | None = None
    batch: int = 1
    runs: int = 50
    warmup: int = 5
    threads: int | None = None
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
    memory_mb: float | None = None  # resident memory the process grew by while loading and running this backend
    model: str = ""


def machine_info() -> dict:
    info = {"platform": platform.platform(), "python": platform.python_version(), "cores": os.cpu_count()}
    try:
        cpu = next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name"))
        info["cpu"] = cpu.split(":", 1)[1].strip()
    except (OSError, StopIteration):
        info["cpu"] = platform.processor()
    for module in ("onnxruntime", "torch", "tensorrt"):
        try:
            info[module] = __import__(module).__version__
        except ImportError:
            pass
    return info


def resident_mb() -> float:
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError):
        return float("nan")


def time_calls(run: Callable[[], object], runs: int, warmup: int) -> np.ndarray:
    """Milliseconds per call after `warmup` untimed calls."""
    for _ in range(warmup):
        run()
    times = np.empty(runs)
    for i in range(runs):
        started = time.perf_counter()
        run()
        times[i] = (time.perf_counter() - started) * 1000
    return times


def accuracy_images(options: BenchOptions) -> tuple[list[np.ndarray], list[np.ndarray | None]]:
    """Real images (and their masks when --data has them) for the accuracy columns; empty without --data."""
    if options.data is None:
        return [], []
    from segedge.pairs import find_pairs, read_mask

    pairs = find_pairs(options.data)
    picked = [pairs[i] for i in np.linspace(0, len(pairs) - 1, min(ACCURACY_IMAGES, len(pairs))).astype(int)]
    return [read_image(image) for image, _ in picked], [read_mask(mask) for _, mask in picked]


def _masks(backend, images, size) -> list[np.ndarray]:
    import cv2

    masks = []
    for image in images:
        logits = backend.infer(to_model_input(image, backend.spec, size))[0, 0]
        prob = cv2.resize(sigmoid(logits), (image.shape[1], image.shape[0]), interpolation=cv2.INTER_LINEAR)
        masks.append(prob > backend.spec.threshold)
    return masks


def _mean_iou(predictions, targets) -> float | None:
    scores = [mask_metrics(p, t)["iou"] for p, t in zip(predictions, targets, strict=True) if t is not None]
    return round(float(np.mean(scores)), 4) if scores else None


class Candidates:
    """Model files for each requested backend, exported on the fly from a checkpoint where needed."""

    def __init__(self, options: BenchOptions, workdir: Path):
        self.options, self.workdir = options, workdir
        self.onnx = next((p for p in options.engines if p.suffix == ".onnx"), None)
        if self.onnx is None and options.checkpoint is None and not options.engines:
            self.onnx = default_model_path()

    def path_for(self, name: str) -> Path:
        """The artefact to benchmark for one backend; SegedgeError says why it is skipped."""
        options = self.options
        if name == "torch":
            if options.checkpoint is None:
                raise SegedgeError("needs --checkpoint (eager PyTorch runs .pth files)")
            _require("torch", "train")
            return options.checkpoint
        if name == "tensorrt":
            engine = next((p for p in options.engines if p.suffix in (".trt", ".engine")), None)
            _require("tensorrt", "trt")
            if engine is None:
                raise SegedgeError("needs --engine MODEL.trt (build one with segedge export --format trt)")
            return engine
        fp32 = self.fp32_onnx()
        if name == "onnxruntime":
            return fp32
        given = next((p for p in options.engines if p.name.endswith(f".{name.split('-')[1]}.onnx")), None)
        if given is not None:
            return given
        shipped = fp32.with_name(fp32.name.replace(".onnx", f".{name.split('-')[1]}.onnx"))
        if shipped.is_file():
            return shipped
        _require("onnx", "train")
        from segedge.export import precision

        out = self.workdir / shipped.name
        if name == "onnxruntime-fp16":
            return precision.to_fp16(fp32, out)
        calibration = self.calibration_images()
        return precision.to_int8(fp32, out, calibration)

    def fp32_onnx(self) -> Path:
        if self.onnx is None:
            _require("torch", "train")
            from segedge.export.onnx import export_checkpoint

            size = self.options.size
            self.onnx = export_checkpoint(self.options.checkpoint, self.workdir / "model.onnx",
                                          size=size, batch=self.options.batch)
        return self.onnx

    def calibration_images(self) -> list[Path]:
        """A sample of the training images recorded in the model (so accuracy is not measured on the images
        INT8 was calibrated on), else of --data."""
        from segedge.export.images import CALIB_IMAGES, image_files, recorded_folder, sample
        from segedge.export.onnx import read_spec_file

        folder = recorded_folder(read_spec_file(self.fp32_onnx()), "train") or self.options.data
        if folder is None:
            raise SegedgeError("INT8 calibration needs real images: pass --data DIR (images/ + masks/)")
        return sample(image_files(folder), CALIB_IMAGES)


def _require(module: str, extra: str) -> None:
    try:
        __import__(module)
    except ImportError:
        raise SegedgeError(f"{module} not installed (pip install 'segedge[{extra}]')") from None


def bench_one(name: str, path: Path, options: BenchOptions, images, truths, reference) -> tuple[Row, list]:
    before = resident_mb()
    backend = load_backend(path, backend="cpu" if name.startswith("onnxruntime") else "auto",
                           threads=options.threads)
    height, width = (options.size, options.size) if options.size else backend.spec.input_size
    batch = np.random.default_rng(0).standard_normal((options.batch, 3, height, width)).astype(np.float32)
    times = time_calls(lambda: backend.infer(batch), options.runs, options.warmup)
    masks = _masks(backend, images, (height, width)) if images else []
    row = Row(backend=name, precision=_precision(name, backend), device=backend.device,
              input=f"{options.batch}x3x{height}x{width}", batch=options.batch,
              p50_ms=round(float(np.percentile(times, 50)), 2), p90_ms=round(float(np.percentile(times, 90)), 2),
              p99_ms=round(float(np.percentile(times, 99)), 2),
              fps=round(1000 * options.batch / float(np.percentile(times, 50)), 1),
              iou_vs_eager=_mean_iou(masks, reference) if reference else None,
              iou_vs_truth=_mean_iou(masks, truths) if truths else None,
              size_mb=round(path.stat().st_size / 2**20, 2), memory_mb=round(resident_mb() - before, 1),
              model=str(path))
    return row, masks


def _precision(name: str, backend) -> str:
    for suffix in ("fp16", "int8"):
        if name.endswith(suffix):
            return suffix
    return backend.precision


def run_bench(options: BenchOptions, echo: Callable[[str], None] = print) -> tuple[list[Row], dict | None]:
    """Rows for each requested backend (skipped ones say why), and the video pipeline timing if asked."""
    images, truths = accuracy_images(options)
    rows, reference = [], None
    with tempfile.TemporaryDirectory(prefix="segedge-bench-") as workdir:
        candidates = Candidates(options, Path(workdir))
        for name in options.backends:
            if name not in BACKENDS:
                raise SegedgeError(f"unknown backend {name!r}; choose from {', '.join(BACKENDS)}")
            try:
                path = candidates.path_for(name)
                row, masks = bench_one(name, path, options, images, truths, reference)
            except SegedgeError as exc:
                rows.append(Row(backend=name, status=f"skipped: {exc}"))
                echo(f"{name}: skipped: {exc}")
                continue
            if name == "torch":
                reference = masks
                row.iou_vs_eager = 1.0 if masks else None
            rows.append(row)
            echo(f"{name}: {row.p50_ms} ms p50 ({row.device}, {row.precision})")
        pipeline = bench_pipeline(candidates.fp32_onnx(), options.pipeline, options.threads) \
            if options.pipeline else None
    eager = next((r for r in rows if r.backend == "torch" and r.status == "ok"), None)
    for row in rows:
        if eager and row.status == "ok":
            row.speedup_vs_eager = round(eager.p50_ms / row.p50_ms, 2)
    return rows, pipeline


def format_table(rows: list[Row]) -> str:
    """An Ultralytics-style table: format, status, size, accuracy, latency, throughput, speedup."""
    header = f"{'Format':<18} {'Status':<8} {'Size (MB)':>9} {'IoU/eager':>9} {'IoU/GT':>7} {'ms/img':>8} " \
             f"{'FPS':>7} {'Speedup':>8}"
    lines = [header, "-" * len(header)]

    def cell(value, spec):
        return format(value, spec) if value is not None else "-"

    for row in rows:
        ok = row.status == "ok"
        per_image = row.p50_ms / row.batch if ok else None
        lines.append(f"{row.backend:<18} {'✅' if ok else '❌':<8} {cell(row.size_mb, '.1f'):>9} "
                     f"{cell(row.iou_vs_eager, '.4f'):>9} {cell(row.iou_vs_truth, '.4f'):>7} "
                     f"{cell(per_image, '.2f'):>8} {cell(row.fps, '.1f'):>7} {cell(row.speedup_vs_eager, '.2f'):>8}")
    skipped = [f"  {row.backend}: {row.status}" for row in rows if row.status != "ok"]
    return "\n".join(lines + (["", "Skipped:", *skipped] if skipped else []))


def write_json(rows: list[Row], path: Path, extra: dict | None = None) -> None:
    payload = {"machine": machine_info(), "rows": [asdict(r) for r in rows], **(extra or {})}
    Path(path).write_text(json.dumps(payload, indent=2) + "\n")


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


def bench_pipeline(engine: Path | None, video: Path, threads: int | None = None, effect: str = "blur") -> dict:
    """Where the time goes in the video pipeline: each stage timed on its own (sequential pass), then the real
    threaded pipeline's frames/s against model-only frames/s."""
    import av

    from segedge.effects import apply_effect
    from segedge.media import upright
    from segedge.runtime import Segmenter
    from segedge.video import process_video

    segmenter = Segmenter(engine, "auto", threads)
    stages = dict.fromkeys(("decode", "preprocess", "inference", "refine+composite", "encode"), 0.0)
    frames = 0
    with tempfile.TemporaryDirectory(prefix="segedge-pipeline-") as workdir:
        out_path = Path(workdir) / f"out{video.suffix}"
        with av.open(str(video)) as source, av.open(str(out_path), "w") as sink:
            stream = None
            decoder = source.decode(video=0)
            while True:
                started = time.perf_counter()
                frame = next(decoder, None)
                if frame is None:
                    break
                rgb = upright(frame)
                stages["decode"] += time.perf_counter() - started
                started = time.perf_counter()
                tensor = to_model_input(rgb, segmenter.spec)
                stages["preprocess"] += time.perf_counter() - started
                started = time.perf_counter()
                logits = segmenter.backend.infer(tensor)[0, 0]
                stages["inference"] += time.perf_counter() - started
                started = time.perf_counter()
                image = apply_effect(rgb, segmenter.to_matte(sigmoid(logits), rgb), effect)
                stages["refine+composite"] += time.perf_counter() - started
                started = time.perf_counter()
                if stream is None:
                    stream = sink.add_stream("libx264", rate=30)
                    stream.width, stream.height, stream.pix_fmt = rgb.shape[1] // 2 * 2, rgb.shape[0] // 2 * 2, \
                        "yuv420p"
                sink.mux(stream.encode(av.VideoFrame.from_ndarray(
                    np.ascontiguousarray(image[:stream.height, :stream.width]), format="rgb24")))
                stages["encode"] += time.perf_counter() - started
                frames += 1
            if stream is not None:
                sink.mux(stream.encode(None))
        if frames == 0:
            raise SegedgeError(f"video {video} has no frames")
        stats = process_video(segmenter, video, Path(workdir) / f"threaded{video.suffix}", effect=effect, quiet=True)
    total = sum(stages.values())
    model_fps = frames / stages["inference"]
    return {
        "video": str(video), "frames": frames, "model": segmenter.backend.describe(),
        "stage_ms_per_frame": {k: round(1000 * v / frames, 2) for k, v in stages.items()},
        "stage_share": {k: round(v / total, 3) for k, v in stages.items()},
        "sequential_fps": round(frames / total, 1), "model_only_fps": round(model_fps, 1),
        "pipeline_fps": round(stats.fps, 1), "pipeline_vs_model": round(stats.fps / model_fps, 3),
    }


def format_pipeline(result: dict) -> str:
    lines = [f"video pipeline on {result['video']} ({result['frames']} frames, {result['model']})"]
    for stage, ms in result["stage_ms_per_frame"].items():
        lines.append(f"  {stage:<17} {ms:8.2f} ms/frame  {100 * result['stage_share'][stage]:5.1f}%")
    lines.append(f"  threaded pipeline {result['pipeline_fps']} frames/s vs model alone {result['model_only_fps']} "
                 f"frames/s ({100 * result['pipeline_vs_model']:.0f}%)")
    return "\n".join(lines)
