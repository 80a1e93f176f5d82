"""Checkpoint -> simplified, checked ONNX with the model spec embedded in metadata_props."""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

import numpy as np
import onnx
import torch
from segedge.training.checkpoint import load_model
from segedge.training.model import model_cost

import segedge
from segedge.errors import SegedgeError
from segedge.media import atomic_output
from segedge.model_files import ModelFile, embed_spec
from segedge.spec import ModelSpec

log = logging.getLogger("segedge.export")
MIN_OPSET = 17  # first opset with LayerNormalization and the Resize modes TensorRT 10 parses without plugins
MAX_OPSET = 20  # torch's TorchScript exporter (torch.onnx._constants.ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET)
SIMPLIFY_TOLERANCE = 1e-5  # onnxslim only folds/fuses; anything beyond float rounding means it broke the graph


def check_output_path(out: Path) -> None:
    """Fail before any work when `out` cannot be written, so no half-made artefact is left behind."""
    out = Path(out)
    if out.is_dir():
        raise SegedgeError(f"cannot write {out}: it is a folder; give a file name")
    if not out.parent.is_dir():
        raise SegedgeError(f"cannot write {out}: folder {out.parent} does not exist")
    if not os.access(out.parent, os.W_OK) or (out.exists() and not os.access(out, os.W_OK)):
        raise SegedgeError(f"cannot write {out}: permission denied")


def check_opset(opset: int, source: Path | str) -> None:
    if opset < MIN_OPSET:
        raise SegedgeError(f"{source}: opset {opset} is too old; segedge exports need opset >= {MIN_OPSET} "
                           f"(use --opset {MIN_OPSET})")
    if opset > MAX_OPSET:
        raise SegedgeError(f"{source}: opset {opset} is newer than the exporter supports (max {MAX_OPSET})")


def sample_input(model: onnx.ModelProto, spec: ModelSpec) -> np.ndarray:
    dims = model.graph.input[0].type.tensor_type.shape.dim
    batch = dims[0].dim_value or 1
    return np.random.default_rng(0).standard_normal((batch, 3, *spec.input_size), dtype=np.float32)


def run_proto(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


def simplify(model: onnx.ModelProto, spec: ModelSpec) -> tuple[onnx.ModelProto, bool]:
    """onnxslim's folded graph when it computes the same result; the original graph otherwise."""
    try:
        import onnxslim

        slim = onnxslim.slim(model)
        x = sample_input(model, spec)
        expected, got = run_proto(model, x), run_proto(slim, x)
        diff = float(np.abs(expected - got).max())
        if diff > SIMPLIFY_TOLERANCE * max(1.0, float(np.abs(expected).max())):
            log.warning("onnxslim changed the model output by %.2e; keeping the unsimplified graph", diff)
            return model, False
        return slim, True
    except Exception as exc:  # noqa: BLE001 -- a simplifier bug must never block an export that is valid without it
        log.warning("onnxslim failed (%s); keeping the unsimplified graph", str(exc).splitlines()[0][:120])
        return model, False


def versions(opset: int) -> dict[str, str]:
    return {"segedge": segedge.__version__, "torch": torch.__version__, "onnx": onnx.__version__,
            "opset": str(opset)}


def trace(model: torch.nn.Module, spec: ModelSpec, path: Path, batch: int, dynamic: bool, opset: int,
          target: Path) -> None:
    """Write the traced graph to `path`; errors name `target`, the file the user asked for.

    TorchScript exporter: <1 s and fine at opset 17, where the dynamo exporter took 17 s and failed."""
    axes = {0: "batch", 2: "height", 3: "width"} if dynamic else {}
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=DeprecationWarning)  # dynamo=False is deliberate
            torch.onnx.export(
                model.eval(), (torch.zeros(batch, 3, *spec.input_size),), str(path), dynamo=False,
                input_names=[spec.input_name], output_names=[spec.output_name], opset_version=opset,
                dynamic_axes={spec.input_name: axes, spec.output_name: axes} if dynamic else None,
            )
    except Exception as exc:  # noqa: BLE001 -- unsupported opset/op: torch raises several types
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise SegedgeError(f"{target}: ONNX export failed at opset {opset} ({first})") from None


def export_model(model: torch.nn.Module, spec: ModelSpec, out: Path, size: tuple[int, int] | None = None,
                 dynamic: bool = False, batch: int = 1, opset: int = MIN_OPSET) -> ModelFile:
    """Trace an eval-mode model to ONNX at `out` (written to a temp file first, renamed when valid); returns the
    file with the spec embedded in it."""
    check_opset(opset, out)
    if batch < 1:
        raise SegedgeError(f"batch {batch} must be at least 1")
    height, width = size or spec.input_size
    spec = ModelSpec.from_dict({**spec.to_dict(), "input_size": (height, width), "dynamic": dynamic,
                                "precision": "fp32"})
    spec.cost = model_cost(model, (height, width))
    spec.versions = {**spec.versions, **versions(opset)}
    out = Path(out)
    with atomic_output(out) as tmp:
        trace(model, spec, tmp, batch, dynamic, opset, target=out)
        proto, _ = simplify(onnx.load(str(tmp)), spec)
        embed_spec(proto, spec)
        onnx.checker.check_model(proto)
        onnx.save(proto, str(tmp))
    return ModelFile(out, spec)


def load_finite_model(checkpoint: str | Path):
    """load_model, refusing NaN/Inf weights (a diverged run): they would export, and pass parity, as NaN."""
    model, spec, state = load_model(checkpoint)
    bad = [name for name, t in model.state_dict().items() if t.is_floating_point() and not torch.isfinite(t).all()]
    if bad:
        raise SegedgeError(f"{checkpoint}: {len(bad)} weight tensor(s) hold NaN or Inf (first: {bad[0]}); training "
                           "diverged: export an earlier checkpoint")
    return model, spec, state


def export_checkpoint(checkpoint: str | Path, out: str | Path | None = None, *, size: int | tuple[int, int] | None
                      = None, dynamic: bool = False, batch: int = 1, opset: int = MIN_OPSET) -> Path:
    """FP32 ONNX of a checkpoint (default: CKPT_STEM.onnx beside it), at its training size unless `size`."""
    out = Path(out) if out else Path(checkpoint).with_suffix(".onnx")
    check_opset(opset, checkpoint)
    check_output_path(out)
    model, spec, _ = load_finite_model(checkpoint)
    if isinstance(size, int):
        size = (size, size)
    return export_model(model, spec, out, size=size, dynamic=dynamic, batch=batch, opset=opset).path
