"""onnxruntime backend: CPU, CUDA or TensorRT execution providers; the spec comes from the ONNX metadata."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from segedge.backends.base import Backend
from segedge.cpu import int8_saturates
from segedge.errors import SegedgeError, missing_extra
from segedge.spec import SPEC_METADATA_KEY, ModelSpec

log = logging.getLogger("segedge")
DYNAMIC_BATCH = 8  # frames per call when the batch axis is symbolic: enough to fill a GPU, bounded memory
PROVIDERS = {
    "cpu": ["CPUExecutionProvider"],
    "cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"],
    "tensorrt": ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
}


def _onnxruntime():
    try:
        import onnxruntime
    except ImportError:
        raise missing_extra("onnxruntime", "cpu") from None
    return onnxruntime


def choose_providers(requested: str, available: list[str]) -> list[str]:
    """Execution providers for --backend auto|cpu|cuda|tensorrt; asking for a GPU that is absent is an error
    here only when nothing but CPU would remain, and the caller warns loudly about the fallback."""
    if requested == "auto":
        for name in ("tensorrt", "cuda"):
            if PROVIDERS[name][0] in available:
                return [p for p in PROVIDERS[name] if p in available]
        return ["CPUExecutionProvider"]
    if requested not in PROVIDERS:
        raise SegedgeError(f"unknown backend {requested!r} for an ONNX model; choose auto, cpu, cuda or tensorrt")
    return [p for p in PROVIDERS[requested] if p in available] or ["CPUExecutionProvider"]


def open_session(path: Path, requested: str = "auto", threads: int | None = None, exact_int8: bool = False):
    """An onnxruntime session; `exact_int8` selects the slower u8u8 kernels that do not saturate on x86 CPUs
    without VNNI (needed only for INT8 models whose weights use the full 8-bit range)."""
    ort = _onnxruntime()
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads or (os.cpu_count() or 1)
    options.log_severity_level = 3
    if exact_int8:
        options.add_session_config_entry("session.x64quantprecision", "1")
    providers = choose_providers(requested, ort.get_available_providers())
    try:
        session = ort.InferenceSession(str(path), options, providers=providers)
    except Exception as exc:  # onnxruntime raises its own Fail/InvalidProtobuf types
        first = str(exc).strip().splitlines()[0][:200]
        raise SegedgeError(f"{path} is not a loadable ONNX model ({first})") from None
    if requested in ("cuda", "tensorrt") and PROVIDERS[requested][0] not in session.get_providers():
        log.warning("WARNING: %s was requested but onnxruntime has no %s here; running on CPU instead "
                    "(pip install 'segedge[gpu]' on a machine with an NVIDIA GPU)", requested, PROVIDERS[requested][0])
    return session


def needs_exact_int8(spec: ModelSpec) -> bool:
    """An INT8 model with full-range weights, on a CPU whose u8s8 kernels would saturate on it."""
    return spec.precision == "int8" and not spec.quantization.get("reduce_range") and int8_saturates()


def spec_from_session(session, path: Path) -> ModelSpec:
    metadata = session.get_modelmeta().custom_metadata_map
    if SPEC_METADATA_KEY not in metadata:
        raise SegedgeError(f"{path} has no segedge model spec in its metadata; export it with `segedge export`")
    return ModelSpec.from_json(metadata[SPEC_METADATA_KEY])


class OnnxRuntimeBackend(Backend):
    name = "onnxruntime"

    def __init__(self, path: Path, requested: str = "auto", threads: int | None = None):
        path = Path(path)
        self.session = open_session(path, requested, threads)
        spec = spec_from_session(self.session, path)
        if self.device == "cpu" and needs_exact_int8(spec):  # full-range INT8 (for TensorRT, or older exports)
            self.session = open_session(path, requested, threads, exact_int8=True)
        super().__init__(path, spec)
        self.input_name = self.session.get_inputs()[0].name
        self.output_name = self.session.get_outputs()[0].name

    @property
    def device(self) -> str:
        provider = self.session.get_providers()[0]
        return {"CUDAExecutionProvider": "cuda", "TensorrtExecutionProvider": "tensorrt"}.get(provider, "cpu")

    @property
    def max_batch(self) -> int:
        """The batch the file was exported with, or DYNAMIC_BATCH when its batch axis is symbolic."""
        size = self.session.get_inputs()[0].shape[0]
        return size if isinstance(size, int) and size > 0 else DYNAMIC_BATCH

    def describe(self) -> str:
        return f"{super().describe()} [providers: {', '.join(self.session.get_providers())}]"

    def infer(self, batch: np.ndarray) -> np.ndarray:
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        if self.device != "cpu":
            return self._infer_bound(batch)
        return self.session.run([self.output_name], {self.input_name: batch})[0].astype(np.float32, copy=False)

    def _infer_bound(self, batch: np.ndarray) -> np.ndarray:
        """On a GPU provider, IO binding lets onnxruntime copy the input once and allocate the output on the
        device itself, instead of staging both through extra host buffers on every call."""
        binding = self.session.io_binding()
        binding.bind_cpu_input(self.input_name, batch)
        binding.bind_output(self.output_name, "cuda")
        self.session.run_with_iobinding(binding)
        return binding.copy_outputs_to_cpu()[0].astype(np.float32, copy=False)
