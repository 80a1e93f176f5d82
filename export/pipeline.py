"""`segedge export`: checkpoint -> ONNX (fp32/fp16/int8) and/or TensorRT engine, each checked against PyTorch."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from segedge.export import images as image_source
from segedge.export.onnx import MIN_OPSET, check_opset, check_output_path, export_model, load_finite_model
from segedge.export.parity import TOLERANCES, check_parity, enforce, ground_truth_iou, model_inputs, onnx_logits
from segedge.export.precision import latency_ms, to_fp16, to_int8

from segedge.errors import SegedgeError
from segedge.media import read_image
from segedge.model_files import FORMATS, REDUCED_PRECISIONS, ModelFile, default_path, onnx_path_for

EXPORT_FORMATS = (*(f.export_as for f in FORMATS if f.export_as), "all")
PRECISIONS = ("fp32", *REDUCED_PRECISIONS)


@dataclass
class ExportOptions:
    checkpoint: Path
    out: Path | None = None
    format: str = "onnx"
    precision: str | None = None  # default: fp32 for onnx, fp16 for trt/all
    size: int | None = None
    dynamic: bool = False
    batch: int = 1
    calib: Path | None = None
    opset: int = MIN_OPSET
    workspace_gb: float = 4.0
    timing_cache: Path | None = None


@dataclass
class Outputs:
    """Final artefact paths; None means not written (an fp32 ONNX that is only a step lives in a temp dir)."""

    onnx: Path | None
    reduced: Path | None
    engine: Path | None

    def all(self) -> list[Path]:
        return [p for p in (self.onnx, self.reduced, self.engine) if p is not None]


@dataclass
class ExportResult:
    outputs: Outputs
    precision: str
    parity: dict[str, dict] = field(default_factory=dict)  # per precision
    int8: dict = field(default_factory=dict)  # latency and ground-truth IoU comparison
    engine_info: dict = field(default_factory=dict)


def resolve_precision(fmt: str, precision: str | None) -> str:
    if fmt not in EXPORT_FORMATS:
        raise SegedgeError(f"unknown format {fmt!r}; choose {', '.join(EXPORT_FORMATS)}")
    if precision is not None and precision not in PRECISIONS:
        raise SegedgeError(f"unknown precision {precision!r}; choose {', '.join(PRECISIONS)}")
    return precision or ("fp32" if fmt == "onnx" else "fp16")


def plan_outputs(checkpoint: Path, out: Path | None, fmt: str, precision: str) -> Outputs:
    """onnx: OUT is the ONNX at the requested precision. trt: OUT is the engine; the ONNX it is built from
    (FP32, or the Q/DQ INT8 one) is written beside it. all: OUT is the FP32 ONNX; the others sit beside it."""
    checkpoint = Path(checkpoint)
    if fmt == "onnx":
        onnx = Path(out) if out else onnx_path_for(checkpoint, precision)
        return Outputs(onnx, None, None) if precision == "fp32" else Outputs(None, onnx, None)
    if fmt == "trt":
        engine = Path(out) if out else default_path(checkpoint, "tensorrt")
        if precision == "int8":
            return Outputs(None, onnx_path_for(engine, "int8"), engine)
        return Outputs(onnx_path_for(engine, "fp32"), None, engine)
    base = Path(out) if out else onnx_path_for(checkpoint, "fp32")
    reduced = onnx_path_for(base, precision) if precision != "fp32" else None
    return Outputs(base, reduced, default_path(base, "tensorrt"))


def parity_images(spec, calib: Path | None) -> tuple[list[np.ndarray], list[np.ndarray | None], str]:
    """RGB images, their ground-truth masks (None when absent) and a description of their source."""
    files, source = image_source.parity_files(spec, calib)
    if not files:
        count = 4
        return image_source.generated_images(count, spec.input_size), [None] * count, "generated images"
    images = [read_image(f) for f in files]
    return images, [image_source.read_truth(f, image.shape[:2]) for f, image in zip(files, images, strict=True)], \
        f"images from {source}"


def describe_file(model: ModelFile) -> str:
    spec, path = model.spec, model.path
    shape = "dynamic batch/H/W, nominal " if spec.dynamic else ""
    return (f"{path} ({path.stat().st_size / 1e6:.1f} MB, {spec.precision}, input {spec.input_name} "
            f"{shape}{'x'.join(map(str, spec.input_size))}, opset {spec.versions.get('opset', '?')})")


def describe_parity(result: dict, precision: str, source: str) -> str:
    tol = TOLERANCES[precision]
    diff_tol = f" (tol {tol.max_logit_diff:g} x max(1, |logit|))" if tol.max_logit_diff is not None else ""
    return (f"  parity vs PyTorch on {result['images']} {source}: max |logit diff| {result['max_abs_diff']:.2e}"
            f"{diff_tol}, mask IoU {result['mask_iou']:.4f} (tol >= {tol.min_mask_iou})")


def checked(written: ModelFile, precision: str, model, images, source: str, echo) -> dict:
    """Parity of one written artefact; the artefact is removed when it is out of tolerance."""
    try:
        result = check_parity(model, written.path, images, written.spec)
        enforce(result, precision, written.path)
    except BaseException:
        written.path.unlink(missing_ok=True)
        raise
    echo(f"wrote {describe_file(written)}")
    echo(describe_parity(result, precision, source))
    return result


def compare_int8(fp32: ModelFile, int8: ModelFile, images, masks) -> dict:
    """CPU latency of both models and, when ground truth is at hand, their IoU to it."""
    comparison = {"fp32_ms": latency_ms(fp32.path), "int8_ms": latency_ms(int8.path)}
    if masks and all(m is not None for m in masks):
        inputs = model_inputs(images, fp32.spec)
        for name, written in (("fp32", fp32), ("int8", int8)):
            comparison[f"{name}_iou"] = ground_truth_iou(onnx_logits(written.path, inputs), images, masks,
                                                         written.spec)
    return comparison


def describe_int8(c: dict) -> list[str]:
    lines = []
    if "fp32_iou" in c:
        lines.append(f"  IoU to ground truth: fp32 {c['fp32_iou']:.4f} -> int8 {c['int8_iou']:.4f} "
                     f"({c['int8_iou'] - c['fp32_iou']:+.4f})")
    speedup = c["fp32_ms"] / c["int8_ms"]
    verdict = (f"INT8 is {speedup:.2f}x faster" if speedup > 1.0 else
               f"INT8 is NOT faster than FP32 on this CPU ({speedup:.2f}x)")
    lines.append(f"  onnxruntime CPU latency: fp32 {c['fp32_ms']:.2f} ms, int8 {c['int8_ms']:.2f} ms: {verdict}")
    return lines


def export(options: ExportOptions, echo: Callable[[str], None] = print) -> ExportResult:
    precision = resolve_precision(options.format, options.precision)
    outputs = plan_outputs(options.checkpoint, options.out, options.format, precision)
    check_opset(options.opset, options.checkpoint)
    for path in outputs.all():
        check_output_path(path)
    model, spec, _ = load_finite_model(options.checkpoint)
    if options.calib is not None:
        image_source.image_files(options.calib)  # a wrong --calib fails before any file is written
    images, masks, source = parity_images(spec, options.calib)
    result = ExportResult(outputs, precision)
    size = (options.size, options.size) if options.size else None
    with tempfile.TemporaryDirectory(prefix="segedge-export-") as work:
        fp32 = export_model(model, spec, outputs.onnx or Path(work) / "model.onnx", size=size,
                            dynamic=options.dynamic, batch=options.batch, opset=options.opset)
        if outputs.onnx is not None:
            result.parity["fp32"] = checked(fp32, "fp32", model, images, source, echo)
        else:  # an intermediate: still checked, so a reduced model is never blamed for an export bug
            enforce(check_parity(model, fp32.path, images, fp32.spec), "fp32", options.checkpoint)
        engine_source = fp32
        if precision == "fp16" and outputs.reduced is not None:
            fp16 = to_fp16(fp32.path, outputs.reduced)
            result.parity["fp16"] = checked(fp16, "fp16", model, images, source, echo)
        if precision == "int8":
            calib = image_source.calibration_files(spec, options.calib, Path(options.checkpoint))
            for_tensorrt = outputs.engine is not None
            engine_source = to_int8(fp32.path, outputs.reduced, calib, tensorrt=for_tensorrt)
            result.parity["int8"] = checked(engine_source, "int8", model, images, source, echo)
            echo(f"  calibrated on {len(calib)} images{' (symmetric, for TensorRT)' if for_tensorrt else ''}")
            result.int8 = compare_int8(fp32, engine_source, images, masks)
            for line in describe_int8(result.int8):
                echo(line)
        if outputs.engine is not None:
            result.engine_info = build_trt(options, outputs, precision, engine_source, echo)
    return result


def build_trt(options: ExportOptions, outputs: Outputs, precision: str, source: ModelFile, echo) -> dict:
    from segedge.export.tensorrt import EngineRequest, build_engine

    request = EngineRequest(onnx_path=source.path, engine_path=outputs.engine, spec=source.spec,
                            precision=precision, batch=options.batch, workspace_gb=options.workspace_gb,
                            timing_cache=options.timing_cache)
    engine, info = build_engine(request)
    echo(f"wrote {engine} ({engine.stat().st_size / 1e6:.1f} MB, TensorRT {info['tensorrt_version']}, "
         f"{precision}, {info['gpu']} sm {info['compute_capability']}, shapes {info['shapes']})")
    return info
