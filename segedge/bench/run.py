"""run_bench: load and warm up each backend, time them in turns, and score their masks against eager PyTorch."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

from segedge.backends import load_backend
from segedge.bench.accuracy import AccuracySet, image_masks, rounded_iou
from segedge.bench.candidates import Candidates
from segedge.bench.options import TORCH_VARIANTS, BenchOptions, check_options, resolve_options
from segedge.bench.pipeline import bench_pipeline
from segedge.bench.report import Row
from segedge.bench.timing import PeakMemory, time_in_turns
from segedge.errors import SegedgeError
from segedge.model_files import is_format, model_stem, read_spec


def backend_request(name: str, device: str) -> str:
    """What load_backend is asked for. Torch follows --device (which names where torch and onnxruntime run);
    onnxruntime rows use its CUDA provider when asked, or under auto when it has one, and never its TensorRT
    provider (native TensorRT has its own row, always on the GPU)."""
    if name == "tensorrt":
        return "tensorrt"
    if not name.startswith("onnxruntime") or device != "auto":
        return device
    import onnxruntime

    return "cuda" if "CUDAExecutionProvider" in onnxruntime.get_available_providers() else "cpu"


def open_backend(name: str, path: Path, options: BenchOptions):
    if name in TORCH_VARIANTS:
        from segedge.backends.torch import TorchBackend

        return TorchBackend(path, options.device, options.threads, **TORCH_VARIANTS[name])
    threads = None if name == "tensorrt" else options.threads  # CPU threads mean nothing to a GPU engine
    return load_backend(path, backend=backend_request(name, options.device), threads=threads)


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


def run_bench(options: BenchOptions, echo: Callable[[str], None] = print) -> tuple[list[Row], dict | None]:
    """Rows for each requested backend of each model (skipped or failed ones say why), and the video pipeline timing
    of the first model if asked (on the ONNX file its rows used, not a second export)."""
    plans = resolve_options(options)
    for plan in plans:
        check_options(plan)
    with tempfile.TemporaryDirectory(prefix="segedge-bench-") as workdir:
        candidates = [Candidates(plan, Path(tempfile.mkdtemp(dir=workdir))) for plan in plans]  # a folder each
        rows = [row for plan, files in zip(plans, candidates, strict=True) for row in bench_model(plan, files, echo)]
        if not options.pipeline:
            return rows, None
        return rows, bench_pipeline(candidates[0].pipeline_engine(), plans[0].pipeline, plans[0].threads)


def bench_model(options: BenchOptions, candidates: Candidates, echo: Callable[[str], None]) -> list[Row]:
    """One model's rows. Eager torch goes first when asked for, so every other row's speedup and mask agreement are
    against it."""
    names = sorted(options.backends, key=lambda name: name != "torch")
    label = model_label(options)
    accuracy = AccuracySet(options, echo)
    rows: dict[str, Row] = {}
    loaded: dict[str, Loaded] = {}
    for name in names:
        try:
            path = candidates.path_for(name)
        except SegedgeError as exc:
            rows[name] = Row(backend=name, status=f"skipped: {exc}")
            echo(f"{label} {name}: skipped: {exc}".strip())
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
        echo(f"{label} {name}: {rows[name].p50_ms} ms p50 ({rows[name].device}, {rows[name].precision})".strip())
    return with_model_columns([rows[name] for name in names], options, label)


def model_files(options: BenchOptions) -> list[Path]:
    return [*options.engines, *([options.checkpoint] if options.checkpoint else [])]


def model_label(options: BenchOptions) -> str:
    """What the table calls the model: its embedded name or its first file's stem."""
    files = model_files(options)
    return model_stem(files[0]) if files else ""


def with_model_columns(rows: list[Row], options: BenchOptions, label: str) -> list[Row]:
    """Every row of one model gets its name, its GMAC (recorded in its ONNX spec at export) and the speedup against
    its eager row."""
    costs = (read_spec(path).cost for path in model_files(options) if is_format(path, "onnxruntime"))
    gmac = next((cost["gmac"] for cost in costs if "gmac" in cost), None)
    eager = next((r for r in rows if r.backend == "torch" and r.status == "ok"), None)
    for row in rows:
        row.name = label
        row.gmac = gmac
        if eager and row.status == "ok":
            row.speedup_vs_eager = round(eager.p50_ms / row.p50_ms, 2)
    return rows
