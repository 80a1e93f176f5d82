"""The JSON sidecar beside a TensorRT engine (model.trt.json): the model contract plus what the engine is tied to.

A serialized engine only loads on the TensorRT version and GPU family it was built for, so the runtime checks
both here first and says how to rebuild, instead of letting TensorRT fail with a deserialisation error.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from segedge.errors import SegedgeError
from segedge.media import atomic_output
from segedge.spec import ModelSpec

log = logging.getLogger("segedge")
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


def _major_minor(version: str) -> tuple[str, ...]:
    return tuple(version.split(".")[:2])


def check_engine_compatible(info: dict, trt_version: str, gpu_name: str | None,
                            compute_capability: str | None) -> None:
    """Refuse an engine built with another TensorRT major.minor or for another GPU architecture (compute
    capability); another GPU model of the same architecture usually loads, so that is a loud warning only."""
    built_version = str(info.get("tensorrt_version", "unknown"))
    built_gpu = info.get("gpu") or info.get("gpu_name") or "unknown"
    built_cc = str(info.get("compute_capability", "unknown"))
    where = f"engine built with TensorRT {built_version} on {built_gpu} (sm {built_cc})"
    if _major_minor(built_version) != _major_minor(trt_version):
        raise SegedgeError(f"{where}; this machine has TensorRT {trt_version}: {REBUILD}")
    if compute_capability and built_cc != "unknown" and built_cc != compute_capability:
        raise SegedgeError(f"{where}; this GPU is {gpu_name} (sm {compute_capability}): {REBUILD}")
    if gpu_name and built_gpu != "unknown" and built_gpu != gpu_name:
        log.warning("WARNING: %s; this GPU is %s: it may load but run slower than a rebuilt engine",
                    where, gpu_name)
