"""Quantisation-aware fine-tuning of a shipped model, so its onnxruntime INT8 file agrees with its FP32 file.

Post-training quantisation plateaus at ~0.97 mask agreement on val-scenes (benchmarks/results/int8_cpu.md). Here the
network sees, while it trains, the rounding onnxruntime's CPU INT8 file will apply: every convolution that
export/precision.py quantises gets its input fake-quantised to uint8 per tensor (range fixed by MinMax calibration on
the same images as the export's) and its BN-folded weights to 7-bit symmetric per-channel (reduce_range, as shipped).
The student is trained towards the FP32 model's own logits (BCE to its probabilities + MSE on logits), so the FP32
file stays the reference and only the weights handed to the INT8 export change. BatchNorms are folded into the convs
and left as identities, so the result is an ordinary checkpoint for `segedge export --precision int8`.

    python -m segedge.training.qat default -o runs/qat/default-qat.pth --data ../shared/data/people/train --steps 600
"""

from __future__ import annotations

import argparse
import copy
import logging
import random
from itertools import islice, pairwise
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from segedge.export.images import CALIB_IMAGES, image_files, sample
from segedge.export.precision import FP32_NODE_PREFIXES
from segedge.training.checkpoint import load_model
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from segedge.media import read_image
from segedge.preprocess import to_model_input

log = logging.getLogger("segedge.qat")
WEIGHT_QMAX = 64  # onnxruntime's symmetric int8 range with reduce_range: [-64, 64]


class FakeQuantConv(nn.Module):
    """A conv whose input and weights are rounded as onnxruntime's QLinearConv will round them."""

    def __init__(self, conv: nn.Conv2d):
        super().__init__()
        self.conv = conv
        self.register_buffer("low", torch.tensor(0.0))
        self.register_buffer("high", torch.tensor(0.0))
        self.calibrating = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.calibrating:  # MinMax over every calibration image, including 0 as onnxruntime does
            self.low.copy_(torch.minimum(self.low, x.detach().min()))
            self.high.copy_(torch.maximum(self.high, x.detach().max()))
            return self.conv(x)
        scale = float((self.high - self.low).clamp_min(1e-8) / 255)
        zero_point = int(torch.round(-self.low / scale).clamp(0, 255))
        x = torch.fake_quantize_per_tensor_affine(x, scale, zero_point, 0, 255)
        weight = self.conv.weight
        weight_scale = (weight.detach().abs().amax(dim=(1, 2, 3)) / WEIGHT_QMAX).clamp_min(1e-12)
        weight = torch.fake_quantize_per_channel_affine(
            weight, weight_scale, torch.zeros_like(weight_scale, dtype=torch.int32), 0, -WEIGHT_QMAX, WEIGHT_QMAX)
        conv = self.conv
        return F.conv2d(x, weight, conv.bias, conv.stride, conv.padding, conv.dilation, conv.groups)


def fold_batchnorms(model: nn.Module) -> None:
    """Fold every BatchNorm's scale into the conv before it (as the ONNX export does): the BN keeps only its shift.

    The conv then holds exactly the weights onnxruntime quantises; the BN (scale 1, frozen, statistics 0 and 1 - eps)
    adds the folded bias, so the state dict keeps the model's layout and exports as usual.
    """
    for module in model.modules():
        for conv, bn in pairwise(module.children()):
            if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
                fused = fuse_conv_bn_eval(conv, bn)
                conv.weight.data.copy_(fused.weight.data)
                bn.reset_parameters()  # weight 1, bias 0, running mean 0, running var 1
                bn.running_var.fill_(1 - bn.eps)  # so (x - 0) / sqrt(var + eps) * 1 is exactly x
                bn.bias.data.copy_(fused.bias.data if conv.bias is None else fused.bias.data - conv.bias.data)
                bn.weight.requires_grad_(False)


def wrap_quantised_convs(model: nn.Module, fp32_prefixes: tuple[str, ...]) -> list[FakeQuantConv]:
    """Replace every conv onnxruntime will quantise (module path outside the FP32-kept prefixes) in place."""
    kept = tuple(prefix.strip("/").replace("/", ".") for prefix in fp32_prefixes)
    wrapped = []
    for name, module in list(model.named_modules()):
        for child_name, child in list(module.named_children()):
            path = f"{name}.{child_name}" if name else child_name
            if isinstance(child, nn.Conv2d) and not path.startswith(kept):
                wrapper = FakeQuantConv(child)
                setattr(module, child_name, wrapper)
                wrapped.append(wrapper)
    return wrapped


def unwrap(model: nn.Module) -> None:
    for module in list(model.modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, FakeQuantConv):
                setattr(module, child_name, child.conv)


def batches(paths: list[Path], spec, batch_size: int, rng: random.Random):
    while True:
        chosen = rng.sample(paths, batch_size)
        inputs = np.concatenate([to_model_input(read_image(p), spec) for p in chosen])
        if rng.random() < 0.5:
            inputs = inputs[..., ::-1].copy()
        yield torch.from_numpy(inputs)


def agreement_loss(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """BCE to the teacher's probabilities weighs the pixels near the threshold; MSE keeps the logits close."""
    return F.binary_cross_entropy_with_logits(student, torch.sigmoid(teacher)) + 0.05 * F.mse_loss(student, teacher)


def quantisation_aware_finetune(checkpoint: str, data: Path, steps: int, batch_size: int, lr: float,
                                seed: int = 0) -> tuple[nn.Module, object]:
    teacher, spec, _ = load_model(checkpoint)
    student = copy.deepcopy(teacher)
    fold_batchnorms(student)
    wrapped = wrap_quantised_convs(student, FP32_NODE_PREFIXES.get(spec.backbone, ()))
    paths = image_files(data)
    with torch.no_grad():  # the export calibrates on these same images
        for path in sample(paths, CALIB_IMAGES):
            student(torch.from_numpy(to_model_input(read_image(path), spec)))
    for module in wrapped:
        module.calibrating = False
    log.info("%d convs fake-quantised; %d steps of batch %d", len(wrapped), steps, batch_size)
    student.eval()  # BNs are identities now; eval keeps them so
    optimizer = torch.optim.Adam([p for p in student.parameters() if p.requires_grad], lr=lr)
    rng = random.Random(seed)
    for step, inputs in enumerate(islice(batches(paths, spec, batch_size, rng), steps)):
        with torch.no_grad():
            target = teacher(inputs)
        loss = agreement_loss(student(inputs), target)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if step % 20 == 0 or step == steps - 1:
            log.info("step %d/%d loss %.4f", step + 1, steps, loss.item())
    unwrap(student)
    return student, spec


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", help="checkpoint path or embedded name (default)")
    parser.add_argument("-o", "--output", type=Path, required=True)
    parser.add_argument("--data", type=Path, required=True, help="training images (DIR or DIR/images)")
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=1e-5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(args.threads)
    model, spec = quantisation_aware_finetune(args.checkpoint, args.data, args.steps, args.batch_size, args.lr)
    spec.training = {**spec.training, "qat": {"steps": args.steps, "batch_size": args.batch_size, "lr": args.lr}}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"spec": spec.to_dict(), "model": model.state_dict()}, args.output)
    log.info("wrote %s", args.output)


if __name__ == "__main__":
    main()
