"""ONNX -> serialized TensorRT engine (.trt) plus a JSON sidecar holding the model contract.

TensorRT 10 Python API when importable, else `trtexec` on PATH, else one line saying what to install.
Everything here except `build_with_api` runs without TensorRT, so it is unit-tested on any machine.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from segedge.errors import SegedgeError
from segedge.media import atomic_output
from segedge.spec import ModelSpec

DEFAULT_WORKSPACE_GB = 4.0
INSTALL_HINT = ("TensorRT is not installed: pip install 'segedge[trt]' on a machine with an NVIDIA GPU, "
                "or put trtexec (from the TensorRT tarball) on PATH")


@dataclass(frozen=True)
class Profile:
    """min/opt/max NCHW shapes of the input for one TensorRT optimisation profile."""

    min: tuple[int, int, int, int]
    opt: tuple[int, int, int, int]
    max: tuple[int, int, int, int]

    def as_dict(self) -> dict[str, list[int]]:
        return {"min": list(self.min), "opt": list(self.opt), "max": list(self.max)}


@dataclass
class EngineRequest:
    onnx_path: Path
    engine_path: Path
    spec: ModelSpec
    precision: str = "fp16"
    batch: int = 1
    workspace_gb: float = DEFAULT_WORKSPACE_GB
    timing_cache: Path | None = None
    profile: Profile = field(init=False)

    def __post_init__(self):
        if self.precision not in ("fp32", "fp16", "int8"):
            raise SegedgeError(f"unknown TensorRT precision {self.precision!r}; choose fp32, fp16 or int8")
        self.profile = profile_for(self.spec, self.batch)
        if self.timing_cache is None:
            self.timing_cache = default_timing_cache(self.engine_path)


def profile_for(spec: ModelSpec, batch: int = 1) -> Profile:
    """Fixed models: one shape. Dynamic models: batch 1..`batch`, the sides the spec's DYNAMIC_RANGE serves
    (rounded outwards to multiples of its SIZE_MULTIPLE), optimum at training."""
    height, width = spec.input_size
    fixed = (batch, 3, height, width)
    if not spec.dynamic:
        return Profile(fixed, fixed, fixed)
    (min_h, max_h), (min_w, max_w) = (spec.dynamic_sides(side, outward=True) for side in (height, width))
    return Profile((1, 3, min_h, min_w), fixed, (batch, 3, max_h, max_w))


def default_timing_cache(engine_path: Path) -> Path:
    """One cache per folder, shared by every build there: later builds skip kernel timing they already did."""
    return Path(engine_path).parent / "tensorrt.timing.cache"


def builder_flags(precision: str) -> list[str]:
    """TensorRT BuilderFlag names. INT8 comes from the Q/DQ nodes (explicit quantisation); FP16 lets the
    layers left unquantised run in half precision instead of FP32."""
    return {"fp32": [], "fp16": ["FP16"], "int8": ["INT8", "FP16"]}[precision]


def _shape_arg(name: str, shape: tuple[int, ...]) -> str:
    return f"{name}:{'x'.join(map(str, shape))}"


def trtexec_command(request: EngineRequest, trtexec: str = "trtexec", save_as: Path | None = None) -> list[str]:
    """The trtexec command line that builds the same engine as the Python API path."""
    name = request.spec.input_name
    command = [trtexec, f"--onnx={request.onnx_path}", f"--saveEngine={save_as or request.engine_path}",
               f"--timingCacheFile={request.timing_cache}",
               f"--memPoolSize=workspace:{int(request.workspace_gb * 1024)}M"]
    command += [f"--{flag.lower()}" for flag in builder_flags(request.precision)]
    if request.spec.dynamic:  # static ONNX shapes are taken from the file; trtexec refuses shape flags for them
        profile = request.profile
        command += [f"--minShapes={_shape_arg(name, profile.min)}", f"--optShapes={_shape_arg(name, profile.opt)}",
                    f"--maxShapes={_shape_arg(name, profile.max)}"]
    return command


def parse_trtexec_version(output: str) -> str | None:
    """'[TensorRT v100300]' in trtexec's log -> '10.3.0'."""
    match = re.search(r"TensorRT v(\d+)", output)
    if not match:
        return None
    number = int(match.group(1))
    return f"{number // 10000}.{number // 100 % 100}.{number % 100}"


def gpu_identity() -> dict[str, str]:
    """Name and compute capability of GPU 0 via nvidia-smi (present wherever TensorRT can run)."""
    smi = shutil.which("nvidia-smi")
    if not smi:
        return {"gpu": "unknown", "compute_capability": "unknown"}
    result = subprocess.run([smi, "--query-gpu=name,compute_cap", "--format=csv,noheader", "-i", "0"],
                            capture_output=True, text=True, check=False)
    name, _, capability = result.stdout.strip().partition(",")
    return {"gpu": name.strip() or "unknown", "compute_capability": capability.strip() or "unknown"}


def sidecar_info(request: EngineRequest, tensorrt_version: str, builder: str, gpu: dict[str, str]) -> dict:
    """What a runtime must check before loading the engine, next to the model contract."""
    return {
        "tensorrt_version": tensorrt_version,
        "gpu": gpu.get("gpu", "unknown"),
        "compute_capability": gpu.get("compute_capability", "unknown"),
        "precision": request.precision,
        "input_name": request.spec.input_name,
        "output_name": request.spec.output_name,
        "shapes": request.profile.as_dict(),
        "dynamic": request.spec.dynamic,
        "workspace_gb": request.workspace_gb,
        "builder": builder,
        "onnx": Path(request.onnx_path).name,
    }


def tensorrt_module():
    try:
        import tensorrt
    except ImportError:
        return None
    return tensorrt


def build_with_api(trt, request: EngineRequest) -> str:
    """Build with the TensorRT 10 Python API; returns the TensorRT version."""
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # explicit batch is the only mode in TensorRT 10 (flag deprecated)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(request.onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise SegedgeError(f"{request.onnx_path}: TensorRT cannot parse the ONNX model ({errors[:300]})")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(request.workspace_gb * (1 << 30)))
    for flag in builder_flags(request.precision):
        config.set_flag(getattr(trt.BuilderFlag, flag))
    profile = builder.create_optimization_profile()
    profile.set_shape(request.spec.input_name, request.profile.min, request.profile.opt, request.profile.max)
    config.add_optimization_profile(profile)
    cache_path = Path(request.timing_cache)
    cache = config.create_timing_cache(cache_path.read_bytes() if cache_path.is_file() else b"")
    config.set_timing_cache(cache, ignore_mismatch=True)  # a cache from another GPU/version is just ignored
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise SegedgeError(f"{request.onnx_path}: TensorRT failed to build an engine (see the log above)")
    _write_atomic(request.engine_path, bytes(serialized))
    _write_atomic(cache_path, bytes(config.get_timing_cache().serialize()))
    return trt.__version__


def build_with_trtexec(trtexec: str, request: EngineRequest) -> str:
    """Build with trtexec; returns the TensorRT version it reports."""
    tmp = request.engine_path.with_name(f".{request.engine_path.name}.tmp")
    command = trtexec_command(request, trtexec, save_as=tmp)
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0 or not tmp.is_file():
        tmp.unlink(missing_ok=True)
        last = (result.stdout + result.stderr).strip().splitlines()[-1:] or ["no output"]
        raise SegedgeError(f"{request.onnx_path}: trtexec failed (exit {result.returncode}: {last[0][:200]})")
    os.replace(tmp, request.engine_path)
    return parse_trtexec_version(result.stdout + result.stderr) or "unknown"


def _write_atomic(path: Path, data: bytes) -> None:
    with atomic_output(path) as tmp:
        tmp.write_bytes(data)


def choose_builder(engine_path: Path) -> tuple[str, object]:
    """('api', tensorrt module) or ('trtexec', path); one actionable line when neither is here."""
    trt = tensorrt_module()
    if trt is not None:
        return "api", trt
    trtexec = shutil.which("trtexec")
    if trtexec:
        return "trtexec", trtexec
    raise SegedgeError(f"cannot build {engine_path}: {INSTALL_HINT}")


def build_engine(request: EngineRequest) -> tuple[Path, dict]:
    """Build the engine and write its sidecar; returns (engine path, sidecar info)."""
    kind, tool = choose_builder(request.engine_path)
    from segedge.model_files import write_sidecar

    spec = ModelSpec.from_dict({**request.spec.to_dict(), "precision": request.precision})
    try:
        version = build_with_api(tool, request) if kind == "api" else build_with_trtexec(tool, request)
        info = sidecar_info(request, version, kind, gpu_identity())
        write_sidecar(request.engine_path, spec, info)
    except BaseException:
        Path(request.engine_path).unlink(missing_ok=True)  # an engine without its sidecar is unusable
        raise
    return request.engine_path, info
