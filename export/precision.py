"""Reduced-precision ONNX: FP16 (weights and compute, FP32 I/O) and INT8 static Q/DQ from calibration images."""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process

from segedge.errors import SegedgeError
from segedge.media import atomic_output, read_image
from segedge.model_files import ModelFile, embed_spec, embedded_spec
from segedge.preprocess import to_model_input


def save_with_precision(model: onnx.ModelProto, out: Path, precision: str, quantization: dict | None = None
                        ) -> ModelFile:
    """Record the precision (and how INT8 was made) in the embedded spec, check, then write atomically."""
    spec = embedded_spec(model, out)
    spec.precision = precision
    spec.quantization = quantization or {}
    embed_spec(model, spec)
    onnx.checker.check_model(model)
    with atomic_output(out) as tmp:
        onnx.save(model, str(tmp))
    return ModelFile(Path(out), spec)


def to_fp16(onnx_path: str | Path, out: str | Path) -> ModelFile:
    """FP16 weights and compute; inputs and outputs stay FP32 so callers feed and read the same tensors."""
    from onnxruntime.transformers.float16 import convert_float_to_float16
    from onnxruntime.transformers.onnx_model import OnnxModel

    model = convert_float_to_float16(onnx.load(str(onnx_path)), keep_io_types=True)
    OnnxModel(model).topological_sort()  # the converter appends its input casts last; onnx.checker wants order
    return save_with_precision(model, Path(out), "fp16")


class ImageReader(CalibrationDataReader):
    """onnxruntime CalibrationDataReader over image files, pre-processed exactly as the runtime does."""

    def __init__(self, images: list[Path], model: onnx.ModelProto):
        self.spec = embedded_spec(model)
        graph_input = model.graph.input[0]
        self.name = graph_input.name
        self.batch = graph_input.type.tensor_type.shape.dim[0].dim_value or 1
        self.pending = list(images)

    def get_next(self) -> dict[str, np.ndarray] | None:
        if not self.pending:
            return None
        x = to_model_input(read_image(self.pending.pop(0)), self.spec)
        return {self.name: np.repeat(x, self.batch, axis=0)}


# Layers kept in FP32 in CPU INT8 models: the high-resolution (stride <= 4) backbone layers whose low-level features
# feed the decoder, and the output layers. Quantising the former cost most of the INT8/FP32 mask agreement on
# val-scenes (mean per-image IoU 0.909 -> 0.965 when kept in FP32) at no measurable speed cost. The classifier's output
# and the final upsampling, quantised, put the logits on a ~0.2 grid, so every pixel within 0.1 of the threshold
# was decided by rounding (fast: val-scenes 0.964 -> 0.972); see benchmarks/results/int8_cpu.md. The cut trunk's
# low-level tap is at stride 8 (blocks 0-6): its thinned blocks 4-6 (72-96 channels), quantised, cost the thinned
# fast model 0.015 of val-scenes agreement (PTQ 0.961 -> 0.976 kept in FP32) at no measurable speed cost.
OUTPUT_LAYERS = ("/classifier/", "/Resize")  # the 1-channel classifier conv and the final Resize: negligible cost
FP32_NODE_PREFIXES = {
    "mobilenet_v2": ("/backbone/low/", *OUTPUT_LAYERS),
    "mobilenet_v2_s16": ("/backbone/low/", *OUTPUT_LAYERS),  # stride <= 8: the decoder's tap of the cut trunk
    "resnet50": ("/backbone/stem/", "/backbone/layer1/", *OUTPUT_LAYERS),
}


def to_int8(onnx_path: str | Path, out: str | Path, calib_images: list[Path], *, tensorrt: bool = False,
            reduce_range: bool | None = None, fp32_prefixes: tuple[str, ...] | None = None) -> ModelFile:
    """Static INT8 quantisation to a Q/DQ ONNX, per-channel weights, calibrated on `calib_images`.

    For onnxruntime on CPUs: uint8 activations (u8s8 kernels are the fast ones) and 7-bit weights
    (reduce_range), which keep the u8s8 kernels' 16-bit pair sums from saturating on x86 CPUs without VNNI, so the
    same file gives the same masks on every CPU at full INT8 speed; the high-resolution backbone layers stay FP32.
    `tensorrt=True` makes weights and activations symmetric full-range int8, the only Q/DQ form TensorRT builds
    from, and quantises every layer (onnxruntime then runs it with its exact u8u8 kernels on such CPUs).
    `reduce_range` and `fp32_prefixes` override those choices (benchmarks/int8_variants.py compares them).
    """
    if not calib_images:
        raise SegedgeError(f"INT8 quantisation of {onnx_path} needs at least one calibration image")
    model = onnx.load(str(onnx_path))
    spec = embedded_spec(model, onnx_path)
    reader = ImageReader(list(calib_images), model)
    options = {"ActivationSymmetric": True, "WeightSymmetric": True} if tensorrt else {}
    reduce_range = not tensorrt if reduce_range is None else reduce_range
    if fp32_prefixes is None:
        fp32_prefixes = () if tensorrt else FP32_NODE_PREFIXES.get(spec.backbone, ())
    quantization = {"weights": "int8 per-channel, symmetric", "reduce_range": reduce_range,
                    "activations": "int8 symmetric" if tensorrt else "uint8 asymmetric",
                    "calibration": f"MinMax on {len(calib_images)} images", "fp32_nodes": list(fp32_prefixes)}
    with tempfile.TemporaryDirectory(prefix="segedge-int8-") as work:
        prepared = Path(work) / "prepared.onnx"
        quantized = Path(work) / "int8.onnx"
        # BN-free folded graph + shape info: quantize_static's documented pre-processing step
        quant_pre_process(str(onnx_path), str(prepared), skip_symbolic_shape=True)
        keep_fp32 = [node.name for node in onnx.load(str(prepared)).graph.node if node.name.startswith(fp32_prefixes)]
        quantize_static(
            str(prepared), str(quantized), reader, quant_format=QuantFormat.QDQ, per_channel=True,
            reduce_range=reduce_range, activation_type=QuantType.QInt8 if tensorrt else QuantType.QUInt8,
            weight_type=QuantType.QInt8, calibrate_method=CalibrationMethod.MinMax, nodes_to_exclude=keep_fp32,
            extra_options=options,
        )
        return save_with_precision(onnx.load(str(quantized)), Path(out), "int8", quantization)


def latency_ms(onnx_path: Path, runs: int = 20, threads: int | None = None) -> float:
    """Median wall time of one batch on the runtime's onnxruntime CPU session, after two warm-up runs."""
    from segedge.backends.onnxruntime import OnnxRuntimeBackend, fixed_batch

    backend = OnnxRuntimeBackend(onnx_path, "cpu", threads)
    shape = (fixed_batch(backend.session), 3, *backend.spec.input_size)
    x = np.random.default_rng(0).standard_normal(shape, dtype=np.float32)
    times = []
    for i in range(runs + 2):
        start = time.perf_counter()
        backend.infer(x)
        if i >= 2:
            times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000
