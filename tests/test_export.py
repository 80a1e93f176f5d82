"""segedge export: torch vs onnxruntime parity on real images, metadata, dynamic shapes, FP16/INT8, CLI errors."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
from helpers import segedge_in_process

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")

from segedge.export.images import image_files, sample  # noqa: E402
from segedge.export.onnx import MIN_OPSET, export_checkpoint  # noqa: E402
from segedge.export.parity import check_parity, failures, model_inputs, onnx_logits  # noqa: E402
from segedge.export.pipeline import checked, plan_outputs  # noqa: E402
from segedge.export.precision import to_fp16, to_int8  # noqa: E402
from segedge.training.checkpoint import load_model, save_checkpoint  # noqa: E402
from segedge.training.model import build_model  # noqa: E402

from segedge.backends.onnxruntime import OnnxRuntimeBackend  # noqa: E402
from segedge.errors import SegedgeError  # noqa: E402
from segedge.media import read_image  # noqa: E402
from segedge.model_files import ModelFile, read_spec  # noqa: E402
from segedge.pairs import find_pairs, read_pair  # noqa: E402
from segedge.spec import ModelSpec  # noqa: E402

SEGEDGE = Path(__file__).resolve().parent.parent / ".venv" / "bin" / "segedge"
SIZE = (64, 64)


def small_spec(backbone: str, **extra) -> ModelSpec:
    return ModelSpec(backbone=backbone, head_channels=16, separable=True, input_size=SIZE, **extra)


def save_model(path: Path, model, spec: ModelSpec) -> Path:
    save_checkpoint(path, {"model": model.state_dict(), "spec": spec.to_dict()})
    return path


def fit_a_few_steps(model, images: list[np.ndarray], masks: list[np.ndarray], spec: ModelSpec, steps: int = 15):
    """A random-init model predicts a flat mask; a few steps on real pairs make its masks (and their
    disagreements at reduced precision) meaningful."""
    import cv2

    x = torch.from_numpy(np.concatenate(model_inputs(images, spec)))
    y = torch.from_numpy(np.stack([cv2.resize(m.astype(np.float32), SIZE[::-1]) for m in masks])[:, None])
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    with torch.random.fork_rng():
        torch.manual_seed(0)
        for _ in range(steps):
            optimizer.zero_grad()
            torch.nn.functional.binary_cross_entropy_with_logits(model(x), y).backward()
            optimizer.step()
    return model.eval()


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)  # 2 busy cores: more threads only stall
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def val_images(people) -> list[np.ndarray]:
    return [read_image(p) for p in sample(image_files(people / "val"), 8)]


@pytest.fixture(scope="module")
def trained(tiny_data, tmp_path_factory) -> Path:
    """A tiny MobileNetV2 model fitted briefly on real pairs; its spec records tiny_data/train as training data."""
    pairs = [read_pair(image, mask) for image, mask in find_pairs(tiny_data / "train")]
    spec = small_spec("mobilenet_v2", training={"data": str(tiny_data / "train")})
    torch.manual_seed(0)
    model = fit_a_few_steps(build_model(spec), [image for image, _ in pairs], [mask for _, mask in pairs], spec)
    return save_model(tmp_path_factory.mktemp("trained") / "person.pth", model, spec)


@pytest.mark.parametrize("backbone", ["mobilenet_v2", "resnet50"])
def test_round_trip_matches_torch_on_real_images(backbone, val_images, tmp_path):
    torch.manual_seed(0)
    spec = small_spec(backbone)
    checkpoint = save_model(tmp_path / f"{backbone}.pth", build_model(spec), spec)
    onnx_path = export_checkpoint(checkpoint)
    assert onnx_path == tmp_path / f"{backbone}.onnx"
    model, _, _ = load_model(checkpoint)
    result = check_parity(model, onnx_path, val_images)
    assert result["images"] == 8
    assert failures(result, "fp32") == [], result


@pytest.mark.parametrize("head", [dict(head="deeplabv3plus", aspp_rates=(3,), decoder_convs=1),
                                  dict(head="lraspp")])
def test_fast_model_heads_export_with_parity_and_their_spec(head, val_images, tmp_path):
    torch.manual_seed(0)
    spec = small_spec("mobilenet_v2_s16", low_level_channels=8, **head)
    checkpoint = save_model(tmp_path / "fast.pth", build_model(spec), spec)
    onnx_path = export_checkpoint(checkpoint)
    result = check_parity(load_model(checkpoint)[0], onnx_path, val_images)
    assert failures(result, "fp32") == [], result
    assert OnnxRuntimeBackend(onnx_path, "cpu").spec.architecture() == spec.architecture()


def test_metadata_is_embedded_and_read_back_by_the_runtime(trained, tmp_path):
    onnx_path = export_checkpoint(trained, tmp_path / "m.onnx")
    proto = onnx.load(str(onnx_path))
    onnx.checker.check_model(proto)
    assert proto.opset_import[0].version >= MIN_OPSET
    assert [i.name for i in proto.graph.input] == ["image"] and [o.name for o in proto.graph.output] == ["logits"]
    spec = OnnxRuntimeBackend(onnx_path, "cpu").spec
    original = ModelSpec.from_dict(torch.load(trained, weights_only=False)["spec"])
    assert spec.architecture() == original.architecture()
    assert (spec.input_size, spec.mean, spec.std, spec.output, spec.threshold, spec.layout, spec.precision) == (
        SIZE, original.mean, original.std, "logits", original.threshold, "NCHW", "fp32")
    assert spec.training["data"] == original.training["data"]
    assert {"segedge", "torch", "onnx", "opset"} <= spec.versions.keys()


def test_dynamic_model_runs_at_two_sizes(trained, tmp_path):
    onnx_path = export_checkpoint(trained, tmp_path / "dyn.onnx", dynamic=True)
    assert read_spec(onnx_path).dynamic
    model, _, _ = load_model(trained)
    for shape in ((1, 3, 64, 64), (2, 3, 96, 128)):
        x = np.random.default_rng(0).standard_normal(shape, dtype=np.float32)
        got = onnx_logits(onnx_path, [x])[0]
        with torch.no_grad():
            expected = model(torch.from_numpy(x)).numpy()[:1]
        assert got.shape == (1, 1, *shape[2:])
        np.testing.assert_allclose(got, expected, atol=1e-3)


def test_fp16_and_int8_of_the_shipped_model_stay_within_their_iou_tolerance(people, tmp_path):
    """Tolerances are checked on the trained default model (a barely-trained model's masks sit near the threshold
    and flip on any CPU); quantised here on this CPU, compared with the FP32 file's logits on real val images."""
    from segedge.export.parity import compare

    from segedge.backends import DEFAULT_MODEL

    spec = read_spec(DEFAULT_MODEL)
    images = [read_image(f) for f in sample(image_files(people / "val-scenes"), 8)]
    inputs = model_inputs(images, spec)
    reference = onnx_logits(DEFAULT_MODEL, inputs)
    fp16 = to_fp16(DEFAULT_MODEL, tmp_path / "m.fp16.onnx").path
    int8 = to_int8(DEFAULT_MODEL, tmp_path / "m.int8.onnx", sample(image_files(people / "train"), 16)).path
    for path, precision in ((fp16, "fp16"), (int8, "int8")):
        assert read_spec(path).precision == precision
        result = compare(reference, onnx_logits(path, inputs), images, spec)
        assert failures(result, precision) == [], (precision, result)
    assert read_spec(int8).quantization["reduce_range"] is True
    assert int8.stat().st_size < DEFAULT_MODEL.stat().st_size / 2


def test_out_of_tolerance_artefact_is_removed(trained, val_images, tmp_path):
    onnx_path = export_checkpoint(trained, tmp_path / "m.onnx")
    torch.manual_seed(1)
    other = build_model(small_spec("mobilenet_v2")).eval()  # not the model that was exported
    with pytest.raises(SegedgeError, match="disagrees with PyTorch"):
        checked(ModelFile(onnx_path, read_spec(onnx_path)), "fp32", other, val_images, "val images", print)
    assert not onnx_path.exists()


def test_output_plan_for_each_format(tmp_path):
    ckpt = tmp_path / "best.pth"
    assert plan_outputs(ckpt, None, "onnx", "fp32").all() == [tmp_path / "best.onnx"]
    assert plan_outputs(ckpt, None, "onnx", "int8").all() == [tmp_path / "best.int8.onnx"]
    assert plan_outputs(ckpt, tmp_path / "x.onnx", "onnx", "fp16").all() == [tmp_path / "x.onnx"]
    assert plan_outputs(ckpt, None, "trt", "fp16").all() == [tmp_path / "best.onnx", tmp_path / "best.trt"]
    assert plan_outputs(ckpt, None, "trt", "int8").all() == [tmp_path / "best.int8.onnx", tmp_path / "best.trt"]
    assert plan_outputs(ckpt, None, "all", "fp16").all() == [
        tmp_path / "best.onnx", tmp_path / "best.fp16.onnx", tmp_path / "best.trt"]


def segedge_export(*args) -> subprocess.CompletedProcess:
    return subprocess.run([str(SEGEDGE), "export", *map(str, args)], capture_output=True, text=True, timeout=300)


def test_cli_default_export_writes_onnx_beside_checkpoint_and_reports_parity(trained):
    result = segedge_export(trained)
    assert result.returncode == 0, result.stderr
    assert trained.with_suffix(".onnx").is_file()
    # parity ran on the val folder beside the training data recorded in the checkpoint (4 pairs in tiny_data)
    assert "parity vs PyTorch on 4 images from " in result.stdout and "mask IoU" in result.stdout


def bad_inputs(folder: Path, good: Path) -> dict[str, tuple[list, str]]:
    """name -> (export arguments, text the one-line error must contain)."""
    truncated = folder / "truncated.pth"
    truncated.write_bytes(good.read_bytes()[:100])
    text = folder / "notes.pth"
    text.write_text("not a checkpoint\n")
    state = torch.load(good, weights_only=False)
    state["spec"]["head_channels"] = 32  # config says 32 channels, weights have 16
    mismatched = folder / "mismatched.pth"
    torch.save(state, mismatched)
    return {
        "missing": ([folder / "absent.pth"], "absent.pth"),
        "truncated": ([truncated], "truncated.pth"),
        "not a checkpoint": ([text], "notes.pth"),
        "weights don't match config": ([mismatched], "mismatched.pth"),
        "unwritable output": ([good, "-o", folder / "no" / "such" / "dir" / "m.onnx"], "m.onnx"),
        "opset too old": ([good, "--opset", "11"], "good.pth"),
    }


@pytest.mark.parametrize("case", ["missing", "truncated", "not a checkpoint", "weights don't match config",
                                  "unwritable output", "opset too old"])
def test_cli_bad_input_is_one_line_error_and_leaves_nothing(case, tiny_checkpoint, tmp_path):
    good = tmp_path / "good.pth"
    good.write_bytes(tiny_checkpoint.read_bytes())
    args, named = bad_inputs(tmp_path, good)[case]
    before = set(tmp_path.rglob("*"))
    result = segedge_in_process("export", *args)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("segedge: error:") and named in lines[0], result.stderr
    assert set(tmp_path.rglob("*")) == before


def test_cli_int8_without_calibration_data_says_what_to_pass(tiny_checkpoint, tmp_path):
    checkpoint = tmp_path / "tiny.pth"
    checkpoint.write_bytes(tiny_checkpoint.read_bytes())  # its spec records no training data
    result = segedge_in_process("export", checkpoint, "--precision", "int8")
    assert result.returncode != 0 and "--calib" in result.stderr and "Traceback" not in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.pth"]
