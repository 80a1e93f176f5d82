"""Recover a PyTorch state dict from a segedge FP32 ONNX file, for models whose training checkpoint is gone.

The exporter folds each BatchNorm into the convolution before it (w' = w * g / s, b' = beta + (0 - mean) * g / s,
s = sqrt(var + eps)) and names every Conv node after its module path, so the ONNX initializers hold every weight.
Each folded pair is unfolded into the conv plus a BatchNorm that computes the same function in eval mode:
the conv keeps the folded weight, and the BN gets running statistics measured on real images (mean m, variance v
of the conv's output) with gamma = sqrt(v + eps) and beta = m + b', so (x - m) / sqrt(v + eps) * gamma + beta = x + b'.
Using measured rather than identity statistics matters for fine-tuning: in training mode BN normalises with batch
statistics, and those are close to m and v, so a fine-tune starts from the shipped model's behaviour instead of
a re-normalised one.

    python -m segedge.training.from_onnx segedge/models/default.onnx -o default.pth --calib ../shared/data/people/train
"""

from __future__ import annotations

import argparse
from itertools import pairwise
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import numpy_helper
from segedge.export.images import CALIB_IMAGES, image_files, sample
from segedge.training.checkpoint import save_checkpoint
from segedge.training.model import build_model
from torch import nn

from segedge.errors import SegedgeError
from segedge.media import read_image
from segedge.model_files import embedded_spec
from segedge.preprocess import to_model_input
from segedge.spec import ModelSpec


def module_path(node_name: str) -> str:
    """'/backbone/low/low.1/conv/conv.0/conv.0.0/Conv' -> 'backbone.low.1.conv.0.0'.

    Each scope is named relative to the nearest enclosing named module, so a scope that extends the previous one
    ('low' -> 'low.1') replaces it rather than nesting under it."""
    parts: list[str] = []
    for scope in node_name.strip("/").split("/")[:-1]:
        if parts and scope.startswith(parts[-1] + "."):
            parts[-1] = scope
        else:
            parts.append(scope)
    return ".".join(parts)


def folded_convs(model: onnx.ModelProto) -> dict[str, tuple[np.ndarray, np.ndarray | None]]:
    """Module path -> (weight, bias) of every Conv node."""
    initializers = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    convs = {}
    for node in model.graph.node:
        if node.op_type == "Conv":
            weight = initializers[node.input[1]]
            bias = initializers[node.input[2]] if len(node.input) > 2 else None
            convs[module_path(node.name)] = (weight, bias)
    return convs


def batchnorm_after(torch_model: nn.Module) -> dict[str, str]:
    """Conv module path -> path of the BatchNorm that directly follows it inside the same Sequential."""
    pairs = {}
    for parent_name, parent in torch_model.named_modules():
        for (name, child), (next_name, following) in pairwise(parent.named_children()):
            if isinstance(child, nn.Conv2d) and isinstance(following, nn.BatchNorm2d):
                prefix = f"{parent_name}." if parent_name else ""
                pairs[prefix + name] = prefix + next_name
    return pairs


def load_folded(torch_model: nn.Module, convs: dict[str, tuple[np.ndarray, np.ndarray | None]]) -> dict[str, str]:
    """Copy conv weights in; each folded bias goes into the following BN's beta (identity BN for now)."""
    modules = dict(torch_model.named_modules())
    conv_names = {name for name, m in modules.items() if isinstance(m, nn.Conv2d)}
    if conv_names != set(convs):
        missing, extra = sorted(conv_names - set(convs)), sorted(set(convs) - conv_names)
        raise SegedgeError(f"ONNX convolutions do not match the model of its spec (missing {missing[:3]}, "
                           f"unexpected {extra[:3]}); was it exported by segedge from an FP32 checkpoint?")
    bn_of = batchnorm_after(torch_model)
    with torch.no_grad():
        for name, (weight, bias) in convs.items():
            conv = modules[name]
            if tuple(conv.weight.shape) != weight.shape:
                raise SegedgeError(f"{name}: ONNX weight {weight.shape} != model {tuple(conv.weight.shape)}")
            conv.weight.copy_(torch.from_numpy(weight.copy()))
            bias = torch.zeros(weight.shape[0]) if bias is None else torch.from_numpy(bias.copy())
            if name in bn_of:
                bn = modules[bn_of[name]]
                bn.weight.fill_(1.0)
                bn.bias.copy_(bias)
                bn.running_mean.zero_()
                bn.running_var.fill_(1.0 - bn.eps)
            else:
                conv.bias.copy_(bias)
    return bn_of


def measure_conv_outputs(torch_model: nn.Module, conv_names: list[str], batches: list[torch.Tensor]) -> dict:
    """Per-channel mean and variance of each conv's output over all pixels of the given images."""
    modules = dict(torch_model.named_modules())
    sums: dict[str, list] = {name: [0.0, 0.0, 0] for name in conv_names}

    def hook(name):
        def record(_module, _inputs, output):
            flat = output.detach().double().transpose(0, 1).reshape(output.shape[1], -1)
            sums[name][0] += flat.sum(1)
            sums[name][1] += (flat * flat).sum(1)
            sums[name][2] += flat.shape[1]
        return record

    handles = [modules[name].register_forward_hook(hook(name)) for name in conv_names]
    with torch.no_grad():
        for batch in batches:
            torch_model(batch)
    for handle in handles:
        handle.remove()
    stats = {}
    for name, (total, squares, count) in sums.items():
        mean = total / count
        stats[name] = (mean.float(), (squares / count - mean * mean).clamp_min(0).float())
    return stats


def calibrate_batchnorm(torch_model: nn.Module, bn_of: dict[str, str], batches: list[torch.Tensor]) -> None:
    """Give each identity BN the statistics its conv produces on real images, keeping the eval-mode function."""
    stats = measure_conv_outputs(torch_model.eval(), list(bn_of), batches)
    modules = dict(torch_model.named_modules())
    with torch.no_grad():
        for conv_name, bn_name in bn_of.items():
            bn, (mean, var) = modules[bn_name], stats[conv_name]
            folded_bias = bn.bias.clone()
            bn.running_mean.copy_(mean)
            bn.running_var.copy_(var)
            bn.weight.copy_(torch.sqrt(var + bn.eps))
            bn.bias.copy_(mean + folded_bias)


def image_batches(folder: Path, spec: ModelSpec, count: int = CALIB_IMAGES) -> list[torch.Tensor]:
    return [torch.from_numpy(to_model_input(read_image(p), spec)) for p in sample(image_files(folder), count)]


def recover(onnx_path: Path, calib: Path | None) -> tuple[nn.Module, ModelSpec]:
    """The torch model (eval mode) and spec behind a segedge FP32 ONNX file."""
    proto = onnx.load(str(onnx_path))
    spec = embedded_spec(proto, onnx_path)
    if spec.precision != "fp32":
        raise SegedgeError(f"{onnx_path} is {spec.precision}; recover weights from the FP32 file")
    torch_model = build_model(spec).eval()
    bn_of = load_folded(torch_model, folded_convs(proto))
    if calib is not None:
        calibrate_batchnorm(torch_model, bn_of, image_batches(calib, spec))
    return torch_model.eval(), spec


def save_weights(torch_model: nn.Module, spec: ModelSpec, out: Path, source: str) -> None:
    """A weights-only checkpoint: the spec and the deployable (EMA) weights, nothing that needs unpickling code."""
    spec.training = {**spec.training, "recovered_from": source}
    save_checkpoint(out, {"spec": spec.to_dict(), "model": torch_model.state_dict()})


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("onnx", type=Path)
    parser.add_argument("-o", "--out", type=Path, required=True)
    parser.add_argument("--calib", type=Path, help="images whose statistics the unfolded BatchNorms get")
    args = parser.parse_args(argv)
    torch_model, spec = recover(args.onnx, args.calib)
    save_weights(torch_model, spec, args.out, args.onnx.name)
    print(f"wrote {args.out} ({sum(p.numel() for p in torch_model.parameters()) / 1e6:.2f} M parameters)")


if __name__ == "__main__":
    main()
