"""Native TensorRT backend for serialized engines (TensorRT 10 API: named tensors, execute_async_v3),
with device memory from cuda-python. The sidecar's contract is checked before the engine is deserialised.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from segedge.backends.base import Backend
from segedge.errors import SegedgeError
from segedge.model_files import check_engine_compatible, read_sidecar

INSTALL = "install TensorRT and cuda-python on a machine with an NVIDIA GPU: pip install 'segedge[trt]'"


def _import_runtime():
    try:
        import tensorrt
        from cuda.bindings import runtime as cudart
    except ImportError as exc:
        raise SegedgeError(f"{exc.name or 'tensorrt'} is not installed, needed for .trt engines; {INSTALL}") from None
    return tensorrt, cudart


def _check(result):
    """cuda-python returns (error, *values); raise on any error, return the values."""
    error, *values = result if isinstance(result, tuple) else (result,)
    if int(error) != 0:
        raise SegedgeError(f"CUDA call failed with error {error}")
    return values[0] if len(values) == 1 else values


def profile_allows(shape: tuple[int, ...], shapes: dict | None) -> bool:
    """Whether an NCHW input shape lies within the engine's optimisation profile (min/max from the sidecar)."""
    if not shapes:
        return True  # older sidecars: let TensorRT decide
    low, high = shapes["min"], shapes["max"]
    return len(shape) == len(low) and all(lo <= s <= hi for s, lo, hi in zip(shape, low, high, strict=True))


def io_names(engine, trt) -> tuple[str, str]:
    """(input, output) tensor names read from the engine itself, so a renamed export still runs."""
    names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
    inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
    outputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
    if len(inputs) != 1 or not outputs:
        raise SegedgeError(f"engine has inputs {inputs} and outputs {outputs}; expected one image input")
    return inputs[0], outputs[0]


def gpu_identity(cudart) -> tuple[str, str]:
    props = _check(cudart.cudaGetDeviceProperties(0))
    name = props.name.decode() if isinstance(props.name, bytes) else str(props.name)
    return name.rstrip("\x00"), f"{props.major}.{props.minor}"


class TensorRTBackend(Backend):
    name = "tensorrt"

    def __init__(self, path: Path):
        path = Path(path)
        spec, self.info = read_sidecar(path)
        super().__init__(path, spec)
        trt, self.cudart = _import_runtime()
        gpu_name, capability = gpu_identity(self.cudart)
        check_engine_compatible(self.info, trt.__version__, gpu_name, capability)
        runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        self.engine = runtime.deserialize_cuda_engine(path.read_bytes())
        if self.engine is None:
            raise SegedgeError(f"TensorRT could not deserialise {path}; {INSTALL}")
        self.context = self.engine.create_execution_context()
        self.input_name, self.output_name = io_names(self.engine, trt)
        # explicit-precision engines keep float32 I/O, but an engine built with fp16 I/O is honoured too
        self.input_dtype = np.dtype(trt.nptype(self.engine.get_tensor_dtype(self.input_name)))
        self.output_dtype = np.dtype(trt.nptype(self.engine.get_tensor_dtype(self.output_name)))
        self.stream = _check(self.cudart.cudaStreamCreate())
        self.buffers: dict[str, tuple[int, int]] = {}  # tensor name -> (device pointer, bytes)

    @property
    def device(self) -> str:
        return "cuda"

    @property
    def max_batch(self) -> int:
        shapes = self.info.get("shapes")
        return int(shapes["max"][0]) if shapes else 1

    def _device_buffer(self, name: str, nbytes: int) -> int:
        pointer, size = self.buffers.get(name, (0, 0))
        if size < nbytes:  # grow only: shapes within the profile reuse the allocation
            if pointer:
                _check(self.cudart.cudaFree(pointer))
            pointer = _check(self.cudart.cudaMalloc(nbytes))
            self.buffers[name] = (pointer, nbytes)
        return pointer

    def infer(self, batch: np.ndarray) -> np.ndarray:
        cudart = self.cudart
        batch = np.ascontiguousarray(batch, dtype=self.input_dtype)
        input_name, output_name = self.input_name, self.output_name
        if not profile_allows(batch.shape, self.info.get("shapes")) or \
                not self.context.set_input_shape(input_name, batch.shape):
            raise SegedgeError(f"input shape {batch.shape} is outside the engine's profile {self.info.get('shapes')}; "
                               f"rebuild it with segedge export --format trt --dynamic")
        output = np.empty(tuple(self.context.get_tensor_shape(output_name)), self.output_dtype)
        source = self._device_buffer(input_name, batch.nbytes)
        target = self._device_buffer(output_name, output.nbytes)
        self.context.set_tensor_address(input_name, source)
        self.context.set_tensor_address(output_name, target)
        kind = cudart.cudaMemcpyKind
        _check(cudart.cudaMemcpyAsync(source, batch.ctypes.data, batch.nbytes, kind.cudaMemcpyHostToDevice,
                                      self.stream))
        if not self.context.execute_async_v3(self.stream):
            raise SegedgeError(f"TensorRT execution failed for {self.path}")
        _check(cudart.cudaMemcpyAsync(output.ctypes.data, target, output.nbytes, kind.cudaMemcpyDeviceToHost,
                                      self.stream))
        _check(cudart.cudaStreamSynchronize(self.stream))
        return output.astype(np.float32, copy=False)

    def __del__(self):
        for pointer, _ in getattr(self, "buffers", {}).values():
            self.cudart.cudaFree(pointer)
        if getattr(self, "stream", None) is not None:
            self.cudart.cudaStreamDestroy(self.stream)
