"""Model files: which formats segedge reads and writes, how they are named, and where each keeps its ModelSpec.

One table (FORMATS) says, for every kind of model file, its suffixes, the backend that runs it, the pip extra it
needs and where its spec lives; `load_backend`, `segedge export` and `segedge bench` all read it. The spec is read
and written here for every kind: ONNX `metadata_props`, the JSON sidecar beside a TensorRT engine (with what the
engine is tied to) and, only when asked for a .pth, the checkpoint through the torch side.
Torch-free (and onnx-free at import time), so the runtime, export and bench share it.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

from segedge.errors import SegedgeError, missing_extra
from segedge.media import atomic_output
from segedge.spec import SPEC_METADATA_KEY, ModelSpec

log = logging.getLogger("segedge")


@dataclass(frozen=True)
class ModelFormat:
    name: str  # as tables show it
    backend: str  # the backend that runs it
    suffixes: tuple[str, ...]  # the first is what `segedge export` writes
    extra: str  # the pip extra that runs it
    spec_in: str  # where the file keeps its ModelSpec
    export_as: str | None  # `segedge export --format` value; None: not an export target


FORMATS = (
    ModelFormat("PyTorch", "torch", (".pth", ".pt"), "train", "checkpoint['spec']", None),
    ModelFormat("ONNX", "onnxruntime", (".onnx",), "cpu", "metadata_props['segedge.spec']", "onnx"),
    ModelFormat("TensorRT", "tensorrt", (".trt", ".engine", ".plan"), "trt", "JSON sidecar MODEL.trt.json", "trt"),
)
FORMAT_BY_BACKEND = {f.backend: f for f in FORMATS}
REDUCED_PRECISIONS = ("fp16", "int8")  # ONNX files at these precisions are named MODEL.fp16.onnx, MODEL.int8.onnx


@dataclass(frozen=True)
class ModelFile:
    """A model file and the spec it carries, as export hands it on (so nothing reads the spec back from disk)."""

    path: Path
    spec: ModelSpec


def known_suffixes() -> str:
    return ", ".join(suffix for f in FORMATS for suffix in f.suffixes)


def model_format(path: str | Path) -> ModelFormat:
    """The format of a model file, from its extension; a one-line error naming the known ones otherwise."""
    suffix = Path(path).suffix.lower()
    for candidate in FORMATS:
        if suffix in candidate.suffixes:
            return candidate
    raise SegedgeError(f"{path}: unknown model type {suffix or '(no extension)'}; expected {known_suffixes()}")


def is_format(path: str | Path, backend: str) -> bool:
    return Path(path).suffix.lower() in FORMAT_BY_BACKEND[backend].suffixes


def default_path(base: str | Path, backend: str) -> Path:
    """`base` with the suffix `segedge export` writes for that backend's format (best.pth -> best.trt)."""
    return Path(base).with_suffix(FORMAT_BY_BACKEND[backend].suffixes[0])


def onnx_precision(path: str | Path) -> str:
    """The precision an ONNX file's name declares: fp16 or int8 for MODEL.fp16.onnx / MODEL.int8.onnx, else fp32."""
    name = Path(path).name.lower()
    return next((p for p in REDUCED_PRECISIONS if name.endswith(f".{p}.onnx")), "fp32")


def model_stem(path: str | Path) -> str:
    """The model a file belongs to, whatever its precision or format: default.int8.onnx, default.pth -> "default"."""
    return Path(path).name.split(".")[0]


def onnx_path_for(path: str | Path, precision: str) -> Path:
    """The ONNX file of `path` at `precision`: model.onnx -> model.fp16.onnx; best.trt -> best.int8.onnx."""
    path = Path(path)
    return path.with_suffix(".onnx" if precision == "fp32" else f".{precision}.onnx")


# --- ONNX: the spec in metadata_props ---------------------------------------------------------------------------

def embed_spec(model, spec: ModelSpec) -> None:
    """Write the spec (plus a few human-readable keys) into an onnx.ModelProto's metadata_props, replacing older
    values."""
    values = {
        SPEC_METADATA_KEY: spec.to_json(),
        "segedge.backbone": spec.backbone,
        "segedge.input_size": "dynamic" if spec.dynamic else "x".join(map(str, spec.input_size)),
        "segedge.precision": spec.precision,
    }
    kept = [p for p in model.metadata_props if p.key not in values]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    for key, value in values.items():
        model.metadata_props.add(key=key, value=value)


def spec_from_metadata(metadata: dict[str, str], source) -> ModelSpec:
    """The spec in an ONNX file's metadata (from onnx or an onnxruntime session); errors name `source`."""
    if SPEC_METADATA_KEY not in metadata:
        raise SegedgeError(f"{source} has no segedge model spec in its metadata; export it with `segedge export`")
    return ModelSpec.from_artefact(metadata[SPEC_METADATA_KEY], source)


def embedded_spec(model, source="ONNX model") -> ModelSpec:
    """The spec embedded in an onnx.ModelProto."""
    return spec_from_metadata({p.key: p.value for p in model.metadata_props}, source)


def onnx_metadata(path: Path) -> dict[str, str]:
    """metadata_props of an ONNX file: through `onnx` without its weights when installed (the torch side has it),
    else through an onnxruntime session (the runtime's only ONNX reader)."""
    try:
        import onnx
    except ImportError:
        from segedge.backends.onnxruntime import open_session

        return dict(open_session(path, "cpu").get_modelmeta().custom_metadata_map)
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # noqa: BLE001 -- protobuf raises its own DecodeError types
        raise SegedgeError(f"{path} is not a readable ONNX model ({type(exc).__name__})") from None
    return {p.key: p.value for p in proto.metadata_props}


# --- TensorRT: the JSON sidecar beside the engine ---------------------------------------------------------------

REBUILD = "rebuild it on this machine with: segedge export CHECKPOINT --format trt"


def sidecar_path(engine_path: str | Path) -> Path:
    engine_path = Path(engine_path)
    return engine_path.with_name(engine_path.name + ".json")


def write_sidecar(engine_path: str | Path, spec: ModelSpec, info: dict) -> Path:
    """Write {"spec": ..., "engine": info} atomically next to the engine."""
    path = sidecar_path(engine_path)
    text = json.dumps({"spec": spec.to_dict(), "engine": info}, indent=2, sort_keys=True)  # fails before any write
    with atomic_output(path) as tmp:
        tmp.write_text(text)
    return path


def read_sidecar(engine_path: str | Path) -> tuple[ModelSpec, dict]:
    path = sidecar_path(engine_path)
    if not path.is_file():
        raise SegedgeError(f"{engine_path} has no sidecar {path.name}: engines need the JSON written by "
                           f"`segedge export --format trt` beside them")
    try:
        data = json.loads(path.read_text())
        return ModelSpec.from_artefact(data["spec"], path), dict(data["engine"])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise SegedgeError(f"sidecar {path} is corrupt ({type(exc).__name__}); {REBUILD}") from None


def major_minor(version: str) -> tuple[str, ...]:
    return tuple(version.split(".")[:2])


def check_engine_compatible(info: dict, trt_version: str, gpu_name: str | None,
                            compute_capability: str | None) -> None:
    """Refuse an engine built with another TensorRT major.minor or for another GPU architecture (compute
    capability); another GPU model of the same architecture usually loads, so that is a loud warning only."""
    built_version = str(info.get("tensorrt_version", "unknown"))
    built_gpu = info.get("gpu") or info.get("gpu_name") or "unknown"
    built_cc = str(info.get("compute_capability", "unknown"))
    where = f"engine built with TensorRT {built_version} on {built_gpu} (sm {built_cc})"
    if major_minor(built_version) != major_minor(trt_version):
        raise SegedgeError(f"{where}; this machine has TensorRT {trt_version}: {REBUILD}")
    if compute_capability and built_cc != "unknown" and built_cc != compute_capability:
        raise SegedgeError(f"{where}; this GPU is {gpu_name} (sm {compute_capability}): {REBUILD}")
    if gpu_name and built_gpu != "unknown" and built_gpu != gpu_name:
        log.warning("WARNING: %s; this GPU is %s: it may load but run slower than a rebuilt engine",
                    where, gpu_name)


# --- any model file ---------------------------------------------------------------------------------------------

def checkpoint_spec(path: Path) -> ModelSpec:
    """The spec of a .pth checkpoint: needs the torch side ([train]), imported only here."""
    try:
        from segedge.training.checkpoint import read_checkpoint_spec
    except ImportError as exc:
        raise missing_extra(exc.name or "torch", "train") from None
    return read_checkpoint_spec(path)


def read_spec(path: str | Path) -> ModelSpec:
    """The ModelSpec a model file carries, read where its format keeps it (see FORMATS); no session is started
    and torch is imported only for a checkpoint."""
    path = Path(path)
    if not path.is_file():
        raise SegedgeError(f"model file not found: {path}")
    backend = model_format(path).backend
    if backend == "onnxruntime":
        return spec_from_metadata(onnx_metadata(path), path)
    if backend == "tensorrt":
        return read_sidecar(path)[0]
    return checkpoint_spec(path)
