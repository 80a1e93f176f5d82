"""Backends behind one protocol, picked from the model file's extension (or --backend)."""

from __future__ import annotations

from pathlib import Path

from segedge.backends.base import Backend
from segedge.errors import SegedgeError

DEFAULT_MODEL = Path(__file__).resolve().parent.parent / "models" / "default.onnx"
ONNX_EXTENSIONS = (".onnx",)
TENSORRT_EXTENSIONS = (".trt", ".engine", ".plan")
TORCH_EXTENSIONS = (".pth", ".pt")


def default_model_path() -> Path:
    if not DEFAULT_MODEL.is_file():
        raise SegedgeError("no embedded default model in this installation; pass --engine MODEL.onnx|.trt|.pth")
    return DEFAULT_MODEL


def load_backend(path: str | Path | None = None, backend: str = "auto", threads: int | None = None) -> Backend:
    """Open a model for inference: .onnx -> onnxruntime, .trt/.engine -> TensorRT, .pth/.pt -> eager torch."""
    path = Path(path) if path else default_model_path()
    if not path.exists():
        raise SegedgeError(f"model file not found: {path}")
    if path.is_dir():
        raise SegedgeError(f"{path} is a folder; pass a model file (.onnx, .trt, .engine or .pth)")
    suffix = path.suffix.lower()
    if suffix in ONNX_EXTENSIONS:
        from segedge.backends.onnxruntime import OnnxRuntimeBackend

        return OnnxRuntimeBackend(path, requested=backend, threads=threads)
    if suffix in TENSORRT_EXTENSIONS:
        from segedge.backends.tensorrt import TensorRTBackend

        return TensorRTBackend(path)
    if suffix in TORCH_EXTENSIONS:
        from segedge.backends.torch import TorchBackend

        return TorchBackend(path, device=backend, threads=threads)
    raise SegedgeError(f"{path}: unknown model type {suffix or '(no extension)'}; "
                       f"expected .onnx, .trt/.engine or .pth")


__all__ = ["Backend", "default_model_path", "load_backend"]
