from pathlib import Path
from typing import Annotated

import typer

from segedge.errors import SegedgeError, missing_extra

NAME = "export"
HELP = ("Export a checkpoint to ONNX (fp32/fp16/int8) and/or a TensorRT engine, checked against PyTorch "
        "on real images; prints the parity figures.")
EXAMPLES = """Examples:\n\n
  segedge export runs/mnv2/best.pth                      # -> runs/mnv2/best.onnx (FP32, training size)\n\n
  segedge export best.pth --dynamic -o model.onnx        # any batch and H, W divisible by 16\n\n
  segedge export best.pth --precision int8 --calib ../shared/data/people/val\n\n
  segedge export best.pth --format trt --precision fp16  # best.onnx + best.trt + best.trt.json (needs TensorRT)\n\n
  segedge export default --dynamic -o default_dynamic.onnx  # re-export the embedded model
"""


def command(
    checkpoint: Annotated[Path, typer.Argument(
        help="segedge training checkpoint (.pth), or an embedded name (default, fast): its PyTorch weights.")],
    out: Annotated[Path | None, typer.Option(
        "-o", "--out", help="Output file (default: beside CHECKPOINT; NAME.onnx here for an embedded name).")] = None,
    format: Annotated[str, typer.Option("--format", help="onnx, trt or all.")] = "onnx",
    precision: Annotated[str | None, typer.Option(help="fp32, fp16, int8 (default: fp32 onnx, fp16 trt).")] = None,
    size: Annotated[int | None, typer.Option(help="Square input size, multiple of 16 (default: training).")] = None,
    dynamic: Annotated[bool, typer.Option("--dynamic", help="Dynamic batch, height and width.")] = False,
    batch: Annotated[int, typer.Option(help="Batch size (the maximum batch with --dynamic).")] = 1,
    calib: Annotated[Path | None, typer.Option(help="Images (DIR, DIR/images) for parity, INT8 calibration.")] = None,
    opset: Annotated[int, typer.Option(help="ONNX opset (>= 17).")] = 17,
    workspace: Annotated[float, typer.Option(help="TensorRT builder workspace limit in GiB.")] = 4.0,
    timing_cache: Annotated[Path | None, typer.Option(help="TensorRT timing cache (default: beside engine).")] = None,
) -> None:
    if size is not None and dynamic:
        raise SegedgeError("--size and --dynamic exclude each other: a dynamic model takes any size")
    try:
        from segedge.export.pipeline import ExportOptions, export
    except ImportError as exc:
        raise missing_extra(exc.name or "torch", "train") from None
    export(ExportOptions(checkpoint=checkpoint, out=out, format=format, precision=precision, size=size,
                         dynamic=dynamic, batch=batch, calib=calib, opset=opset, workspace_gb=workspace,
                         timing_cache=timing_cache), echo=typer.echo)
