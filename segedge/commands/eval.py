import json
import logging
from pathlib import Path
from typing import Annotated

import typer

NAME = "eval"
HELP = ("Accuracy of a model (default, .onnx, .trt, .pth) on DATA_DIR/images + DATA_DIR/masks: foreground IoU, "
        "boundary IoU (band of 2% of the image diagonal), mIoU, Dice, pixel accuracy (means over images, at the "
        "original image size) and ms per image, for the folder and per source (the file name's prefix before its "
        "first '_').")
EXAMPLES = """Examples:\n\n
  segedge eval ../shared/data/people/val-portraits\n\n
  segedge eval --engine model.int8.onnx ../shared/data/people/val --json\n\n
  segedge eval --engine runs/mnv2/best.pth ../shared/data/people/val-scenes --threshold 0.4
"""


def command(
    data_dir: Annotated[Path, typer.Argument(help="Folder with images/ and masks/ (STEM.png, 0/255).")],
    engine: Annotated[Path | None, typer.Option(help=".onnx, .trt/.engine, .pth or an embedded name: default, "
                                                "default-int8, fast, fast-int8 (default: default).")] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print one JSON object to stdout.")] = False,
    threshold: Annotated[float | None, typer.Option(help="Mask threshold (default: the model's).")] = None,
    backend: Annotated[str, typer.Option(help="auto, cpu, cuda or tensorrt.")] = "auto",
    threads: Annotated[int | None, typer.Option(help="CPU threads for inference.")] = None,
    refine: Annotated[bool, typer.Option(help="Score the guided-upsampled matte `segedge run` outputs; "
                                         "--no-refine scores plain bilinear upsampling, as the training log does.")]
    = True,
    tta: Annotated[bool, typer.Option(help="Score with mirror test-time augmentation (as `segedge run --tta`).")]
    = False,
    quiet: Annotated[bool, typer.Option(help="No progress bar (it goes to stderr, so --json output stays clean).")]
    = False,
) -> None:
    from segedge.evaluate import evaluate
    from segedge.runtime import Segmenter

    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    segmenter = Segmenter(engine, backend, threads, refine=refine, tta=tta)
    result = evaluate(segmenter, data_dir, threshold, quiet=quiet)
    if json_output:
        typer.echo(json.dumps(result))
        return
    typer.echo(f"{result['model']} on {data_dir} ({result['images']} images, threshold {result['threshold']}, "
               f"{result['upsampling']} upsampling)")
    typer.echo(f"  IoU {result['iou']:.4f}  boundary IoU {result['boundary_iou']:.4f}  mIoU {result['miou']:.4f}  "
               f"Dice {result['dice']:.4f}  pixel accuracy {result['pixel_accuracy']:.4f}  "
               f"{result['ms_per_image']:.1f} ms/img")
    typer.echo(f"  {'source':<10}{'images':>7}{'IoU':>9}{'boundary IoU':>14}")
    for source, scores in result["by_source"].items():
        typer.echo(f"  {source:<10}{scores['images']:>7}{scores['iou']:>9.4f}{scores['boundary_iou']:>14.4f}")
    if result["skipped"]:
        typer.echo(f"  skipped {len(result['skipped'])} unreadable or mismatched: {', '.join(result['skipped'])}")
