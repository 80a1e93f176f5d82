"""The model file each backend row runs: given with --engine, shipped beside it, or exported on the fly."""

from __future__ import annotations

from pathlib import Path

from segedge.backends import MODELS_DIR
from segedge.bench.options import TORCH_VARIANTS, BenchOptions
from segedge.errors import SegedgeError
from segedge.model_files import is_format, model_stem, onnx_path_for, onnx_precision, read_spec


class Candidates:
    """Model files for each requested backend, exported on the fly from a checkpoint where needed."""

    def __init__(self, options: BenchOptions, workdir: Path):
        self.options, self.workdir = options, workdir
        self.onnx = next((p for p in options.engines if is_format(p, "onnxruntime") and onnx_precision(p) == "fp32"),
                         None)

    def path_for(self, name: str) -> Path:
        """The artefact to benchmark for one backend; SegedgeError says why it is skipped."""
        options = self.options
        if name in TORCH_VARIANTS:
            _require("torch", "train")
            if options.checkpoint is None:
                raise SegedgeError("needs --checkpoint CKPT.pth (or --checkpoint default): eager PyTorch runs "
                                   "PyTorch weights")
            if TORCH_VARIANTS[name].get("half") and not _torch_on_cuda(options.device):
                raise SegedgeError("fp16 eager torch needs a CUDA GPU")
            return options.checkpoint
        if name == "tensorrt":
            engine = next((p for p in options.engines if is_format(p, "tensorrt")), None)
            _require("tensorrt", "trt")
            if engine is None:
                raise SegedgeError("needs --engine MODEL.trt (build one with segedge export --format trt)")
            return engine
        if name == "onnxruntime":
            return self.fp32_onnx()
        precision = name.split("-")[1]
        given = next((p for p in options.engines if is_format(p, "onnxruntime") and onnx_precision(p) == precision),
                     None)
        if given is not None:
            return given
        fp32 = self.fp32_onnx()
        shipped = onnx_path_for(fp32, precision)
        if shipped.is_file():
            return shipped
        if fp32.parent == MODELS_DIR:
            raise SegedgeError(f"no {shipped.name} is shipped (see segedge/models/README.md); make one with "
                               f"segedge export {model_stem(fp32)} --precision {precision}")
        out = self.workdir / shipped.name
        if precision == "fp16":
            return precision_function("to_fp16")(fp32, out).path
        return precision_function("to_int8")(fp32, out, self.calibration_images()).path

    def fp32_onnx(self) -> Path:
        if self.onnx is None:
            if self.options.checkpoint is None:
                raise SegedgeError("needs an FP32 .onnx: pass --engine MODEL.onnx or --checkpoint CKPT")
            _require("torch", "train")
            from segedge.export.onnx import export_checkpoint

            self.onnx = export_checkpoint(self.options.checkpoint, self.workdir / "model.onnx",
                                          size=self.options.size, batch=self.options.batch)
        return self.onnx

    def pipeline_engine(self) -> Path:
        """The model the video pipeline runs: the FP32 ONNX when there is one, else the first --engine."""
        try:
            return self.fp32_onnx()
        except SegedgeError:
            if not self.options.engines:
                raise
            return self.options.engines[0]

    def calibration_images(self) -> list[Path]:
        """A sample of the training images recorded in the model (so accuracy is not measured on the images
        INT8 was calibrated on), else of --data."""
        from segedge.export.images import CALIB_IMAGES, image_files, recorded_folder, sample

        folder = recorded_folder(read_spec(self.fp32_onnx()), "train") or self.options.data
        if folder is None:
            raise SegedgeError("INT8 calibration needs real images: pass --data DIR (images/ + masks/)")
        return sample(image_files(folder), CALIB_IMAGES)


def precision_function(name: str):
    """segedge.export.precision.to_fp16/to_int8 (torch side; absent in a runtime-only install)."""
    try:
        from segedge.export import precision

        return getattr(precision, name)
    except (ImportError, AttributeError) as exc:
        raise SegedgeError(f"segedge.export.precision.{name} is not available ({exc}); "
                           f"pip install 'segedge[train]'") from None


def _torch_on_cuda(device: str) -> bool:
    import torch

    return device != "cpu" and torch.cuda.is_available()


def _require(module: str, extra: str) -> None:
    try:
        __import__(module)
    except ImportError:
        raise SegedgeError(f"{module} not installed (pip install 'segedge[{extra}]')") from None
