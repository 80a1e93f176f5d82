"""onnxruntime backend: CPU, CUDA or TensorRT execution providers; the spec comes from the ONNX metadata."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from segedge.backends.base import Backend
from segedge.cpu import int8_saturates
from segedge.errors import SegedgeError, missing_extra
from segedge.model_files import spec_from_metadata
from segedge.spec import ModelSpec

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


def open_session(path: Path, requested: str = "auto", threads: int | None = None, exact_int8: bool = False,
                 spinning: bool = True):
    """An onnxruntime session; `exact_int8` selects the slower u8u8 kernels that do not saturate on x86 CPUs
    without VNNI (needed only for INT8 models whose weights use the full 8-bit range); `spinning=False` makes idle
    intra-op threads sleep instead of spin-waiting for work (kinder to other processes on a shared CPU)."""
    ort = _onnxruntime()
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads or (os.cpu_count() or 1)
    options.log_severity_level = 3
    if exact_int8:
        options.add_session_config_entry("session.x64quantprecision", "1")
    if not spinning:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
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
    """The model's spec, checked against the graph's declared input and output; every error names the file."""
    spec = spec_from_metadata(session.get_modelmeta().custom_metadata_map, path)
    check_io(session, spec, path)
    return spec


def check_io(session, spec: ModelSpec, path: Path) -> None:
    """One float32 N x 3 x H x W input (H, W as the spec says, free when it says dynamic) and one N x 1 x H x W
    output, so a model that does not match its spec fails when it is loaded, not on the first frame."""
    inputs, outputs = session.get_inputs(), session.get_outputs()
    if len(inputs) != 1 or len(outputs) != 1:
        raise SegedgeError(f"{path}: a segedge model has one input and one output, not {len(inputs)} and "
                           f"{len(outputs)}")
    dims = [d if isinstance(d, int) and d > 0 else None for d in inputs[0].shape]
    wanted = (3, None, None) if spec.dynamic else (3, *spec.input_size)
    fits = len(dims) == 4 and all(d is None or d == w for d, w in zip(dims[1:], wanted, strict=True))
    if inputs[0].type != "tensor(float)" or not fits or (spec.dynamic and any(dims[2:])):
        size = "HxW (dynamic)" if spec.dynamic else "x".join(map(str, spec.input_size))
        raise SegedgeError(f"{path}: the model takes {inputs[0].type} {_shape(inputs[0].shape)} but its segedge "
                           f"spec says tensor(float) Nx3x{size}; re-export it with `segedge export`")
    out = outputs[0].shape
    if len(out) != 4 or (isinstance(out[1], int) and out[1] != 1):
        raise SegedgeError(f"{path}: the model's output is {_shape(out)}; segedge needs Nx1xHxW person logits")


def fixed_batch(session) -> int:
    """The batch a session's input was exported with; 1 when its batch axis is symbolic."""
    size = session.get_inputs()[0].shape[0]
    return size if isinstance(size, int) and size > 0 else 1


def _shape(dims) -> str:
    return "x".join(str(d) if isinstance(d, int) else "?" for d in dims)


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
