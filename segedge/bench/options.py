"""What `segedge bench` is asked to measure: backends, models, sizes, runs; checked before any timing."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field, replace
from pathlib import Path

from segedge.backends import default_model_path, embedded_models, resolve_checkpoint, resolve_model
from segedge.cpu import bounded_threads
from segedge.errors import SegedgeError
from segedge.spec import ModelSpec

# Eager torch variants: keyword arguments of TorchBackend. torch-compile is opt-in (minutes of compiling on a CPU).
TORCH_VARIANTS = {"torch": {}, "torch-fp16": {"half": True}, "torch-channels-last": {"channels_last": True},
                  "torch-compile": {"compile": True}}
BACKENDS = (*TORCH_VARIANTS, "onnxruntime", "onnxruntime-fp16", "onnxruntime-int8", "tensorrt")
DEFAULT_BACKENDS = tuple(name for name in BACKENDS if name != "torch-compile")


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


def resolve_options(options: BenchOptions) -> list[BenchOptions]:
    """One set of options per model to measure, embedded names turned into files and --threads bounded to the cores.
    With no model given: every embedded model (default first), each with its PyTorch weights when torch is installed,
    so eager rows (and speedups) are there out of the box."""
    threads = bounded_threads(options.threads)
    if options.engines or options.checkpoint:
        engines = [resolve_model(path) for path in options.engines]
        checkpoint = resolve_checkpoint(options.checkpoint) if options.checkpoint else None
        return [replace(options, engines=engines, checkpoint=checkpoint, threads=threads)]
    torch_installed = importlib.util.find_spec("torch") is not None
    plans = []
    for name in sorted(embedded_models(), key=lambda name: name != "default"):
        engine = resolve_model(name)
        weights = engine.with_suffix(".pth")
        checkpoint = weights if weights.is_file() and torch_installed else None
        plans.append(replace(options, engines=[engine], checkpoint=checkpoint, threads=threads))
    if not plans:
        default_model_path()  # raises: no embedded model in this installation
    return plans


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
