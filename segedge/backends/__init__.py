"""Backends behind one protocol, picked from the model file's extension (or --backend)."""

from __future__ import annotations

from pathlib import Path

from segedge.backends.base import Backend
from segedge.errors import SegedgeError
from segedge.model_files import (
    REDUCED_PRECISIONS,
    known_suffixes,
    model_format,
    model_stem,
    onnx_path_for,
    onnx_precision,
)

MODELS_DIR = Path(__file__).resolve().parent.parent / "models"
DEFAULT_MODEL = MODELS_DIR / "default.onnx"


def embedded_names() -> list[str]:
    """Names of the models shipped in the package: default.onnx -> "default", default.int8.onnx -> "default-int8"."""
    names = []
    for path in MODELS_DIR.glob("*.onnx"):
        precision = onnx_precision(path)
        stem = path.name.removesuffix(".onnx" if precision == "fp32" else f".{precision}.onnx")
        names.append(stem if precision == "fp32" else f"{stem}-{precision}")
    return sorted(names)


def embedded_models() -> list[str]:
    """The shipped models, one name each whatever precisions ship: ["default", "fast"]."""
    return sorted({model_stem(path) for path in MODELS_DIR.glob("*.onnx")})


def is_embedded_name(path: str | Path | None) -> bool:
    """A bare word such as "default" (no folder, no extension) names a shipped model, never a file."""
    name = "" if path is None else str(path)
    return bool(name) and not any(char in name for char in "./\\")


def _embedded_file(name: str, suffix: str) -> Path:
    stem, _, precision = name.rpartition("-")
    reduced = suffix == ".onnx" and precision in REDUCED_PRECISIONS  # "default-int8" -> default.int8.onnx
    path = onnx_path_for(MODELS_DIR / stem, precision) if reduced else MODELS_DIR / f"{name}{suffix}"
    if not path.is_file():
        known = ", ".join(embedded_names()) or "none in this installation"
        kind = "checkpoint" if suffix == ".pth" else "model"
        raise SegedgeError(f"no embedded {kind} named {name!r} (embedded models: {known}); "
                           f"pass a file path instead")
    return path


def resolve_model(path: str | Path | None) -> Path:
    """The model file for a path or an embedded name (default, default-int8); None means the default model."""
    if path is None or str(path) == "":
        return default_model_path()
    return _embedded_file(str(path), ".onnx") if is_embedded_name(path) else Path(path)


def resolve_checkpoint(path: str | Path) -> Path:
    """The PyTorch weights for a .pth path or an embedded name ("default" -> the shipped default.pth)."""
    return _embedded_file(str(path), ".pth") if is_embedded_name(path) else Path(path)


def default_model_path() -> Path:
    if not DEFAULT_MODEL.is_file():
        raise SegedgeError("no embedded default model in this installation; pass --engine MODEL.onnx|.trt|.pth")
    return DEFAULT_MODEL


def load_backend(path: str | Path | None = None, backend: str = "auto", threads: int | None = None,
                 spinning: bool = False) -> Backend:
    """Open a model for inference with the backend its format names (segedge.model_files.FORMATS): .onnx ->
    onnxruntime, .trt/.engine/.plan -> TensorRT, .pth/.pt -> eager torch.

    `path` may also name an embedded model ("default", "default-int8"); None is the default model."""
    path = resolve_model(path)
    if not path.exists():
        raise SegedgeError(f"model file not found: {path}")
    if path.is_dir():
        raise SegedgeError(f"{path} is a folder; pass a model file ({known_suffixes()})")
    kind = model_format(path).backend
    if kind == "onnxruntime":
        from segedge.backends.onnxruntime import OnnxRuntimeBackend

        return OnnxRuntimeBackend(path, requested=backend, threads=threads, spinning=spinning)
    if kind == "tensorrt":
        from segedge.backends.tensorrt import TensorRTBackend

        _check_engine_request(path, backend, threads)
        return TensorRTBackend(path)
    from segedge.backends.torch import TorchBackend

    return TorchBackend(path, device=backend, threads=threads)


def _check_engine_request(path: Path, backend: str, threads: int | None) -> None:
    """A TensorRT engine runs on its GPU only: refuse options it cannot honour rather than drop them silently."""
    if backend not in ("auto", "tensorrt", "cuda"):
        raise SegedgeError(f"--backend {backend} cannot run {path.name}: a TensorRT engine runs on an NVIDIA GPU only; "
                           "pass the .onnx it was built from to run on the CPU")
    if threads is not None:
        raise SegedgeError(f"--threads sets CPU inference threads, but {path.name} is a TensorRT engine that runs on "
                           "the GPU; leave --threads out")


__all__ = ["Backend", "default_model_path", "embedded_models", "embedded_names", "load_backend", "resolve_checkpoint",
           "resolve_model"]
