"""Quantisation-aware fine-tuning runs the shipped Q/DQ file itself: it must compute what onnxruntime computes, write
back exactly what it read, and train towards the FP32 file without leaving the file's integer grids."""

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

torch = pytest.importorskip("torch")

from segedge.export.images import image_files, sample  # noqa: E402
from segedge.training.qat import QdqGraph, finetune  # noqa: E402

from segedge.backends import resolve_model  # noqa: E402
from segedge.backends.onnxruntime import open_session  # noqa: E402
from segedge.media import read_image  # noqa: E402
from segedge.metrics import mask_metrics  # noqa: E402
from segedge.model_files import read_spec  # noqa: E402
from segedge.preprocess import to_model_input  # noqa: E402

INT8 = resolve_model("fast-int8")  # the smaller graph: these tests are about the mechanism


def initializers(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    return {init.name: numpy_helper.to_array(init) for init in model.graph.initializer}


def test_the_graph_computes_what_onnxruntime_computes(people):
    model = onnx.load(str(INT8))
    graph = QdqGraph(model).eval()
    # the first activation onnxruntime rounds: the same scale, zero point, rounding and clipping give the same grid
    first = next(n for n in model.graph.node if n.op_type == "QuantizeLinear")
    scale, zero_point = (float(initializers(model)[name]) for name in first.input[1:])
    probe = onnx.load(str(INT8))
    probe.graph.output.append(onnx.helper.make_empty_tensor_value_info(first.output[0]))
    session, spec = open_session(INT8, "cpu"), read_spec(INT8)
    probed = open_session_from(probe)
    agreement = []
    for path in sample(image_files(people / "val-scenes"), 4):
        x = to_model_input(read_image(path), spec)
        with torch.no_grad():
            tensors = graph.tensors(torch.from_numpy(x))
        simulated = tensors[graph.output_name].numpy()[0, 0]
        ours = tensors[first.output[0]].numpy()
        theirs = probed.run([first.output[0]], {"image": x})[0].astype(np.float32)  # uint8 codes
        assert np.abs(ours / scale + zero_point - theirs).max() <= 1.0 + 1e-3  # at most a tie broken differently
        agreement.append(mask_metrics(simulated > 0, session.run(None, {"image": x})[0][0, 0] > 0)["iou"])
    # deeper down, onnxruntime's fixed-point requantisation breaks a few ties differently; the masks must agree
    assert np.mean(agreement) > 0.97


def open_session_from(model: onnx.ModelProto):
    import onnxruntime

    return onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def test_untrained_weights_write_back_unchanged():
    original = onnx.load(str(INT8))
    written = QdqGraph(onnx.load(str(INT8))).write_into(onnx.load(str(INT8)))
    before, after = initializers(original), initializers(written)
    assert before.keys() == after.keys()
    for name, value in before.items():
        assert after[name].dtype == value.dtype and np.array_equal(after[name], value), name


def test_finetuning_writes_a_runnable_int8_file_on_the_same_grids(tiny_data, tmp_path):
    out = tmp_path / "qat.int8.onnx"
    finetune(resolve_model("fast"), INT8, tiny_data / "train", steps=2, batch_size=2, lr=1e-3, out=out)
    spec = read_spec(out)
    assert spec.precision == "int8" and spec.quantization["qat"][-1]["steps"] == 2
    before, after = initializers(onnx.load(str(INT8))), initializers(onnx.load(str(out)))
    changed = [name for name, value in before.items() if not np.array_equal(after[name], value)]
    assert changed  # lr 1e-3 moves weights across grid points
    for name in changed:  # weights stay within the file's 7-bit range; scales and zero points never move
        assert after[name].dtype == before[name].dtype
        if before[name].dtype == np.int8:
            assert np.abs(after[name]).max() <= np.abs(before[name]).max()
    quantisers = [n for n in onnx.load(str(INT8)).graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")]
    assert not set(changed) & {name for n in quantisers for name in n.input[1:]}
    x = to_model_input(read_image(image_files(tiny_data / "val")[0]), spec)
    assert np.isfinite(open_session(out, "cpu").run(None, {"image": x})[0]).all()


def test_trained_activation_scales_move_each_conv_bias_with_its_input_scale(tiny_data, people, tmp_path):
    """--scale-lr: activation scales train; onnxruntime's QLinearConv takes each int32 bias at input scale x weight
    scale, so the written biases follow, and the file still computes what the simulation does."""
    out = tmp_path / "lsq.int8.onnx"
    finetune(resolve_model("fast"), INT8, tiny_data / "train", steps=2, batch_size=2, lr=0.0, out=out, scale_lr=0.05)
    assert read_spec(out).quantization["qat"][-1]["scale_lr"] == 0.05
    model = onnx.load(str(out))
    before, after = initializers(onnx.load(str(INT8))), initializers(model)
    inits = set(after)
    activation_scales = {n.input[1] for n in model.graph.node
                         if n.op_type == "QuantizeLinear" and n.input[0] not in inits}
    assert any(not np.allclose(after[name], before[name], rtol=1e-3) for name in activation_scales)
    zero_points = {n.input[2] for n in model.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")}
    assert all(np.array_equal(after[name], before[name]) for name in zero_points)
    made = {node.output[0]: node for node in model.graph.node}
    checked = 0
    for conv in (n for n in model.graph.node if n.op_type == "Conv" and len(n.input) > 2):
        source, weight, bias = (made.get(name) for name in conv.input[:3])
        if source is None or bias is None or source.op_type != "DequantizeLinear" or bias.input[0] not in inits:
            continue
        expected = after[source.input[1]] * after[weight.input[1]]
        np.testing.assert_allclose(after[bias.input[1]], expected, rtol=1e-6)
        checked += 1
    assert checked > 10
    graph, session, spec = QdqGraph(model).eval(), open_session(out, "cpu"), read_spec(out)
    for path in sample(image_files(people / "val-scenes"), 2):
        x = to_model_input(read_image(path), spec)
        with torch.no_grad():
            simulated = graph(torch.from_numpy(x)).numpy()[0, 0]
        assert mask_metrics(simulated > 0, session.run(None, {"image": x})[0][0, 0] > 0)["iou"] > 0.97
