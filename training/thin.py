"""Thin a trained MobileNetV2 model: fewer expanded (depthwise) channels in chosen inverted-residual blocks.

Most of a small segmenter's CPU time is its stride-2/4 blocks, whose depthwise convs run on 96-144 expanded channels
at a quarter of the input's resolution. Cutting those hidden widths leaves every block's output, and so every
residual sum and the heads, untouched; the kept channels are those that matter most to the block's output
(|BN scale| of the depthwise conv x the norm of the projection column reading it: network slimming, Liu et al.
2017), their trained weights copied. Cutting channels changes the sums every later BatchNorm normalises, so the
statistics are re-estimated on training images (`recalibrate_batchnorm`; fast's val masks: IoU with the uncut model
0 before, 0.87-0.92 after); a short distilled fine-tune recovers the rest. One change is not a cut: block 1 maps
the stem's 32 channels to 16, and a stem cut to 16 makes it a same-width block, which sums its input as all of them
do (exact thinning would need a width other than 16 there).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from segedge.training.model import build_model
from torch import nn

from segedge.errors import SegedgeError
from segedge.spec import ModelSpec


def _blocks(model: nn.Module) -> list[nn.Module]:
    """The trunk's layers in torchvision's `features` order (stem = 0), across the backbone's low/high slices."""
    backbone = model.backbone
    if not hasattr(backbone, "low") or not hasattr(backbone, "high"):
        raise SegedgeError(f"{type(backbone).__name__} cannot be thinned (MobileNetV2 backbones only)")
    return [*backbone.low, *backbone.high]


def _depthwise_and_projection(block: nn.Module) -> tuple[nn.BatchNorm2d, nn.Conv2d]:
    """(BN after the depthwise conv, 1x1 projection) of an inverted residual block, with or without expansion."""
    return block.conv[-3][1], block.conv[-2]


def channel_importance(block: nn.Module) -> torch.Tensor:
    norm, projection = _depthwise_and_projection(block)
    return norm.weight.detach().abs() * projection.weight.detach().flatten(1).norm(dim=0)


def kept_channels(model: nn.Module, widths: tuple[int, ...]) -> dict[int, torch.Tensor]:
    """Block index -> sorted indices of the expanded channels to keep (blocks whose width shrinks)."""
    blocks = _blocks(model)
    keep = {}
    for index, width in enumerate(widths, start=1):
        if index >= len(blocks):
            raise SegedgeError(f"{len(widths)} widths given for a trunk of {len(blocks) - 1} blocks")
        importance = channel_importance(blocks[index])
        if not 0 < width <= importance.numel():
            raise SegedgeError(f"block {index}: width {width} must be 1..{importance.numel()}")
        if width < importance.numel():
            keep[index] = importance.topk(width).indices.sort().values
    return keep


def _feature_index(key: str) -> int | None:
    """features.N index of a backbone state-dict key such as backbone.high.9.conv.1.0.weight (slices of an
    nn.Sequential keep their indices)."""
    parts = key.split(".")
    return int(parts[2]) if parts[0] == "backbone" and parts[1] in ("low", "high") else None


def thin(model: nn.Module, spec: ModelSpec, widths: tuple[int, ...]) -> tuple[nn.Module, ModelSpec]:
    """A copy of `model` with block k's expanded width cut to widths[k - 1], its kept channels' weights copied."""
    widths = tuple(widths) + tuple(spec.depthwise_widths[len(widths):])  # thinning twice keeps earlier cuts
    keep = kept_channels(model, widths)
    thinned_spec = ModelSpec.from_dict(spec.to_dict())
    thinned_spec.depthwise_widths = widths
    thinned = build_model(thinned_spec)
    source = model.state_dict()
    state = {}
    for key, target in thinned.state_dict().items():
        tensor = source[key]
        block = _feature_index(key)
        block = 1 if block == 0 else block  # the stem's output channels are block 1's depthwise channels
        for dim, (old, new) in enumerate(zip(tensor.shape, target.shape, strict=True)):
            if old != new:
                tensor = tensor.index_select(dim, keep[block])
        state[key] = tensor
    thinned.load_state_dict(state)
    return thinned.train(model.training), thinned_spec


def recalibrate_batchnorm(model: nn.Module, batches: Iterable[torch.Tensor]) -> int:
    """Replace every BatchNorm's running mean/variance by their plain average over `batches` (no weights change);
    returns how many images were seen."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [norm.momentum for norm in norms]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # cumulative average
    was_training = model.training
    model.train()
    seen = 0
    with torch.no_grad():
        for images in batches:
            model(images)
            seen += len(images)
    for norm, momentum in zip(norms, momenta, strict=True):
        norm.momentum = momentum
    model.train(was_training)
    return seen

