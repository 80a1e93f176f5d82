"""Checkpoint -> ONNX with the model spec embedded in metadata_props."""

from __future__ import annotations

import os
from pathlib import Path

import onnx
import torch

import segedge
from segedge.errors import SegedgeError
from segedge.spec import SPEC_METADATA_KEY, ModelSpec
from segedge.training.checkpoint import load_model

MIN_OPSET = 17


def embed_spec(model: onnx.ModelProto, spec: ModelSpec) -> None:
    """Write the spec (plus a few human-readable keys) into metadata_props, replacing older values."""
    values = {
        SPEC_METADATA_KEY: spec.to_json(),
        "segedge.backbone": spec.backbone,
        "segedge.input_size": "x".join(map(str, spec.input_size)),
        "segedge.precision": spec.precision,
    }
    kept = [p for p in model.metadata_props if p.key not in values]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    for key, value in values.items():
        model.metadata_props.add(key=key, value=value)


def read_spec(model: onnx.ModelProto) -> ModelSpec:
    for prop in model.metadata_props:
        if prop.key == SPEC_METADATA_KEY:
            return ModelSpec.from_json(prop.value)
    raise SegedgeError("ONNX model has no segedge spec in its metadata")


def export_model(model: torch.nn.Module, spec: ModelSpec, out: Path, size: tuple[int, int] | None = None,
                 dynamic: bool = False, batch: int = 1, opset: int = MIN_OPSET) -> Path:
    """Trace an eval-mode model to ONNX at `out` (written to a temp file first, renamed when valid)."""
    if opset < MIN_OPSET:
        raise SegedgeError(f"opset {opset} is too old; segedge exports need opset >= {MIN_OPSET}")
    height, width = size or spec.input_size
    spec = ModelSpec.from_dict({**spec.to_dict(), "input_size": (height, width), "dynamic": dynamic})
    spec.versions = {**spec.versions, "segedge": segedge.__version__, "torch": torch.__version__,
                     "onnx": onnx.__version__, "opset": str(opset)}
    out = Path(out)
    tmp = out.with_name(f".{out.name}.tmp")
    axes = {0: "batch", 2: "height", 3: "width"} if dynamic else {}
    try:
        torch.onnx.export(
            model.eval(), (torch.zeros(batch, 3, height, width),), str(tmp), dynamo=False,
            input_names=[spec.input_name], output_names=[spec.output_name], opset_version=opset,
            dynamic_axes={spec.input_name: axes, spec.output_name: axes} if dynamic else None,
        )
        proto = onnx.load(str(tmp))
        embed_spec(proto, spec)
        onnx.checker.check_model(proto)
        onnx.save(proto, str(tmp))
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return out


def export_checkpoint(checkpoint: str | Path, out: str | Path | None = None, **options) -> Path:
    model, spec, _ = load_model(checkpoint)
    out = Path(out) if out else Path(checkpoint).with_suffix(".onnx")
    return export_model(model, spec, out, **options)
