"""Quantisation-aware fine-tuning of an INT8 file itself, so onnxruntime's INT8 masks agree with the FP32 file's.

Post-training quantisation plateaus at ~0.97 mask agreement on val-scenes (benchmarks/results/int8_cpu.md), and a
PyTorch model with fake-quantised convs did not help: it rounded at other tensors than onnxruntime does. Here the
Q/DQ ONNX file that `segedge export --precision int8` wrote is run as a PyTorch module, node by node: every
QuantizeLinear/DequantizeLinear pair is a fake quantisation with the file's own scale and zero point (conv outputs,
Add, Concat, Resize, the logits), and every weight is a trainable float rounded to the file's int8 grid on the way
in (straight-through gradients). The module is trained towards the FP32 file's logits on training images, then its
weights are rounded into the same file: activation scales, zero points and layout are untouched, so what trained is
exactly what onnxruntime runs, up to its integer requantisation. With `--scale-lr` the activation scales train too
(learned step size, Esser et al. 2020: the straight-through rounding gives each scale its gradient), as log-scales at
their own learning rate; every conv's int32 bias is then re-quantised to its input's new scale when the file is written.

    python -m segedge.training.qat default.onnx default.int8.onnx -o runs/qat/default.int8.onnx \\
        --data ../shared/data/people/train --steps 2000
"""

from __future__ import annotations

import argparse
import logging
import random
from collections.abc import Iterator
from itertools import islice
from pathlib import Path

import numpy as np
import onnx
import torch
import torch.nn.functional as F
from onnx import numpy_helper
from segedge.export.images import image_files
from segedge.export.precision import save_with_precision
from torch import nn

from segedge.backends.onnxruntime import open_session
from segedge.media import read_image
from segedge.model_files import embedded_spec
from segedge.preprocess import to_model_input

log = logging.getLogger("segedge.qat")


def round_through(x: torch.Tensor) -> torch.Tensor:
    """Round to nearest even (as QuantizeLinear does) with the gradient of the identity."""
    return x + (torch.round(x) - x).detach()


def quantize(x: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor, low: int, high: int) -> torch.Tensor:
    """QuantizeLinear's integer codes (as floats); gradients pass inside [low, high] and stop where the range clips."""
    return torch.clamp(round_through(x / scale) + zero_point, low, high)


def fake_quantize(x: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor, low: int, high: int) -> torch.Tensor:
    """QuantizeLinear then DequantizeLinear."""
    return (quantize(x, scale, zero_point, low, high) - zero_point) * scale


def _broadcast(values: np.ndarray, axis: int, ndim: int) -> torch.Tensor:
    """A per-channel scale or zero point shaped to broadcast along `axis` of an ndim tensor."""
    tensor = torch.from_numpy(values.astype(np.float32))
    if tensor.ndim == 1 and ndim > 1:
        shape = [1] * ndim
        shape[axis] = -1
        tensor = tensor.reshape(shape)
    return tensor


class QdqGraph(nn.Module):
    """A Q/DQ ONNX graph (the op set segedge's INT8 exports use) as a differentiable module.

    Trainable: every quantised weight and bias (DequantizeLinear of an int8/int32 initializer) and every float conv
    weight and bias of the layers kept in FP32; with `train_scales`, every activation scale (as its log). Fixed: every
    zero point and weight scale.
    """

    def __init__(self, model: onnx.ModelProto, train_scales: bool = False):
        super().__init__()
        self.nodes = list(model.graph.node)
        self.input_name = model.graph.input[0].name
        self.output_name = model.graph.output[0].name
        arrays = {init.name: numpy_helper.to_array(init) for init in model.graph.initializer}
        conv_params = {name for node in self.nodes if node.op_type == "Conv" for name in node.input[1:]}
        self.weights = nn.ParameterDict()
        self.param_keys: dict[str, str] = {}  # initializer name -> ParameterDict key (dots are not allowed there)
        self.grids: dict[str, tuple] = {}  # quantised initializer -> (scale, zero point, low, high, dtype)
        self.constants: dict[str, torch.Tensor] = {}
        for node in self.nodes:
            if node.op_type == "DequantizeLinear" and node.input[0] in arrays:
                self._add_quantised(node, arrays)
        for name in conv_params - set(self.param_keys):
            if name in arrays:  # a layer kept in FP32
                self._add_param(name, arrays[name].astype(np.float32))
        self.log_scales = nn.ParameterDict()
        self.scale_keys: dict[str, str] = {}  # activation scale initializer -> log_scales key
        activation_scales = [node.input[1] for node in self.nodes
                             if node.op_type == "QuantizeLinear" and node.input[0] not in arrays]
        for name in dict.fromkeys(activation_scales) if train_scales else ():
            self.scale_keys[name] = key = f"s{len(self.scale_keys)}"
            self.log_scales[key] = nn.Parameter(torch.log(torch.from_numpy(arrays[name].astype(np.float32))))
        for name, value in arrays.items():
            if name not in self.param_keys and name not in self.scale_keys:
                self.constants[name] = torch.from_numpy(np.array(value))

    def _add_param(self, name: str, value: np.ndarray) -> None:
        key = f"p{len(self.param_keys)}"
        self.param_keys[name] = key
        self.weights[key] = nn.Parameter(torch.from_numpy(value))

    def _add_quantised(self, node: onnx.NodeProto, arrays: dict[str, np.ndarray]) -> None:
        stored = arrays[node.input[0]]
        axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
        scale = _broadcast(arrays[node.input[1]], axis, stored.ndim)
        zero_point = _broadcast(arrays[node.input[2]], axis, stored.ndim) if len(node.input) > 2 else torch.zeros(1)
        if stored.dtype == np.int8:  # the file's weight range (7-bit with reduce_range): never leave it
            bound = int(np.abs(stored).max())
            low, high = -bound, bound
        else:  # int32 biases
            low, high = np.iinfo(stored.dtype).min, np.iinfo(stored.dtype).max
        self.grids[node.input[0]] = (scale, zero_point, low, high, stored.dtype)
        self._add_param(node.input[0], ((stored.astype(np.float32) - zero_point.numpy()) * scale.numpy()))

    def value(self, name: str, env: dict[str, torch.Tensor]) -> torch.Tensor | None:
        if not name:
            return None
        if name in self.param_keys:
            return self.weights[self.param_keys[name]]
        if name in self.scale_keys:
            return torch.exp(self.log_scales[self.scale_keys[name]])
        return env[name] if name in env else self.constants[name]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.tensors(x)[self.output_name]

    def tensors(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Every tensor of the graph by its ONNX name, for input `x`."""
        env = {self.input_name: x}
        for node in self.nodes:
            inputs = [self.value(name, env) for name in node.input]
            env[node.output[0]] = self.run_node(node, inputs)
        return env

    def run_node(self, node: onnx.NodeProto, inputs: list) -> torch.Tensor:
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        op = node.op_type
        if op == "QuantizeLinear":  # always followed by its DequantizeLinear: both happen here
            x, scale, zero_point = inputs
            info = np.iinfo(np.uint8 if zero_point.dtype == torch.uint8 else np.int8)
            return fake_quantize(x, scale.float(), zero_point.float(), int(info.min), int(info.max))
        if op == "DequantizeLinear":
            if node.input[0] in self.grids:  # a weight or bias: round the trainable float to the file's grid
                scale, zero_point, low, high, _ = self.grids[node.input[0]]
                return fake_quantize(inputs[0], scale, zero_point, low, high)
            return inputs[0]  # an activation, already rounded by its QuantizeLinear
        if op == "Conv":
            return _conv(inputs, attrs)
        if op == "Clip":
            return torch.clamp(inputs[0], float(inputs[1]), float(inputs[2]))
        if op == "Relu":
            return F.relu(inputs[0])
        if op == "Add":
            return inputs[0] + inputs[1]
        if op == "Concat":
            return torch.cat(inputs, dim=attrs["axis"])
        if op == "GlobalAveragePool":
            return inputs[0].mean(dim=(2, 3), keepdim=True)
        if op == "Expand":  # the pooled branch to the feature map's size; batch from the input, not the file
            shape = [int(d) for d in inputs[1]]
            return inputs[0].expand(torch.broadcast_shapes(inputs[0].shape, (1, *shape[1:])))
        if op == "Resize":
            if (attrs.get("mode"), attrs.get("coordinate_transformation_mode")) != (b"linear", b"half_pixel"):
                raise ValueError(f"{node.name}: only linear half_pixel Resize is supported")
            size = [int(d) for d in inputs[3][2:]]
            return F.interpolate(inputs[0], size=size, mode="bilinear", align_corners=False)
        raise ValueError(f"{node.name}: op {op} is not supported")

    def write_into(self, model: onnx.ModelProto) -> onnx.ModelProto:
        """The same file with the trained weights rounded onto their grids and the trained activation scales (each
        conv's int32 bias re-quantised to follow its input's scale); zero points and weight scales unchanged."""
        grids = dict(self.grids)
        arrays = {name: torch.exp(self.log_scales[key]).detach() for name, key in self.scale_keys.items()}
        for bias, bias_scale, grid in self._rescaled_biases():
            grids[bias], arrays[bias_scale] = grid, grid[0]
        for name, key in self.param_keys.items():
            value = self.weights[key].detach()
            if name in grids:
                scale, zero_point, low, high, dtype = grids[name]
                value = quantize(value, scale, zero_point, low, high).numpy().astype(dtype)
            arrays[name] = value
        for init in model.graph.initializer:
            if init.name in arrays:
                old = numpy_helper.to_array(init)
                value = np.asarray(arrays[init.name]).astype(old.dtype).reshape(old.shape)
                init.CopyFrom(numpy_helper.from_array(value, init.name))
        return model

    def _rescaled_biases(self) -> Iterator[tuple[str, str, tuple]]:
        """(bias initializer, its scale initializer, its int32 grid) for each quantised conv bias whose input scale
        trains: onnxruntime's QLinearConv takes the bias at the input scale times the weight scale."""
        made = {node.output[0]: node for node in self.nodes}
        for conv in (node for node in self.nodes if node.op_type == "Conv" and len(node.input) > 2):
            source, weight, bias = (made.get(name) for name in conv.input[:3])
            trains = source is not None and source.input[1] in self.scale_keys
            if not trains or bias is None or bias.input[0] not in self.grids:
                continue
            input_scale = self.value(source.input[1], {}).detach()
            _, zero_point, low, high, dtype = self.grids[bias.input[0]]
            scale = input_scale * self.grids[weight.input[0]][0].flatten()
            yield bias.input[0], bias.input[1], (scale, zero_point, low, high, dtype)


def _conv(inputs: list, attrs: dict) -> torch.Tensor:
    x, weight, bias = (inputs + [None])[:3]
    top, left, bottom, right = attrs.get("pads", [0, 0, 0, 0])
    if (top, left) != (bottom, right):
        x = F.pad(x, (left, right, top, bottom))
        top = left = 0
    return F.conv2d(x, weight, bias, attrs.get("strides", 1), (top, left), attrs.get("dilations", 1),
                    attrs.get("group", 1))


def batches(paths: list[Path], spec, batch_size: int, rng: random.Random):
    """Training images pre-processed as the runtime does, half of them mirrored."""
    while True:
        inputs = np.concatenate([to_model_input(read_image(p), spec) for p in rng.sample(paths, batch_size)])
        if rng.random() < 0.5:
            inputs = inputs[..., ::-1].copy()
        yield inputs


def agreement_loss(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """BCE to the teacher's probabilities weighs the pixels near the threshold; MSE keeps the logits close."""
    return F.binary_cross_entropy_with_logits(student, torch.sigmoid(teacher)) + 0.05 * F.mse_loss(student, teacher)


def finetune(fp32_path: Path, int8_path: Path, data: Path, steps: int, batch_size: int, lr: float, out: Path,
             seed: int = 0, every: int = 200, scale_lr: float = 0.0) -> None:
    """Train the INT8 file's weights (and with `scale_lr` > 0 its activation scales) towards the FP32 file's
    logits; write the file every `every` steps."""
    teacher = open_session(fp32_path, "cpu")
    int8 = onnx.load(str(int8_path))
    spec = embedded_spec(int8, int8_path)
    graph = QdqGraph(int8, train_scales=scale_lr > 0)
    optimizer = torch.optim.Adam([{"params": graph.weights.parameters(), "lr": lr},
                                  {"params": graph.log_scales.parameters(), "lr": scale_lr}])
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    paths, rng = image_files(data), random.Random(seed)
    name = teacher.get_inputs()[0].name
    for step, inputs in enumerate(islice(batches(paths, spec, batch_size, rng), steps), start=1):
        target = torch.from_numpy(np.concatenate([teacher.run(None, {name: x[None]})[0] for x in inputs]))
        loss = agreement_loss(graph(torch.from_numpy(inputs)), target)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        if step % 20 == 0 or step == 1:
            log.info("step %d/%d loss %.4f", step, steps, loss.item())
        if step % every == 0 or step == steps:
            stage = {"steps": step, "batch_size": batch_size, "lr": lr}  # after any earlier stages of this file
            if scale_lr > 0:
                stage["scale_lr"] = scale_lr
            quantization = {**spec.quantization, "qat": [*spec.quantization.get("qat", []), stage]}
            save_with_precision(graph.write_into(onnx.load(str(int8_path))), out, "int8", quantization)
            log.info("wrote %s after %d steps", out, step)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("fp32", type=Path, help="the FP32 ONNX file (the reference)")
    parser.add_argument("int8", type=Path, help="its Q/DQ INT8 file from segedge export --precision int8")
    parser.add_argument("-o", "--output", type=Path, required=True)
    parser.add_argument("--data", type=Path, required=True, help="training images (DIR or DIR/images)")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=1e-5)
    parser.add_argument("--scale-lr", type=float, default=0.0,
                        help="learning rate of the activation log-scales (0: they stay as calibrated)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(args.threads)
    finetune(args.fp32, args.int8, args.data, args.steps, args.batch_size, args.lr, args.output,
             scale_lr=args.scale_lr)


if __name__ == "__main__":
    main()
