"""The embedded models (default, and fast for live video and weak CPUs) as full citizens: shipped PyTorch weights
that reproduce the shipped ONNX, a name wherever a model is accepted, and fine-tuning from them (eager rows of a bare
`segedge bench`: test_default_model)."""

import json

import numpy as np
import pytest
from helpers import assert_one_line_error, segedge_in_process

from segedge.backends import DEFAULT_MODEL, MODELS_DIR, embedded_names, load_backend, resolve_model
from segedge.media import read_image
from segedge.metrics import mask_metrics

torch = pytest.importorskip("torch")

from segedge.export.images import image_files, sample  # noqa: E402
from segedge.export.parity import onnx_logits  # noqa: E402
from segedge.training.checkpoint import load_model  # noqa: E402

from segedge.model_files import read_spec  # noqa: E402
from segedge.preprocess import to_model_input  # noqa: E402

FAST_MODEL = MODELS_DIR / "fast.onnx"
SHIPPED = ("default", "fast")  # every embedded model with its PyTorch weights


@pytest.fixture(scope="module")
def val_files(people):
    return [f for folder in ("val", "val-portraits", "val-scenes") for f in sample(image_files(people / folder), 3)]


def inputs_for(name: str, files) -> list[np.ndarray]:
    """The files pre-processed for one embedded model (each has its own input size)."""
    spec = read_spec(resolve_model(name))
    return [to_model_input(read_image(f), spec) for f in files]


def test_names_resolve_to_the_shipped_files():
    assert {"default", "default-int8", "fast"} <= set(embedded_names())
    assert resolve_model("default") == DEFAULT_MODEL
    assert resolve_model("default-int8") == MODELS_DIR / "default.int8.onnx"
    assert resolve_model("fast") == FAST_MODEL
    assert resolve_model("runs/x.onnx").as_posix() == "runs/x.onnx"  # paths stay paths
    assert load_backend("default-int8").spec.precision == "int8"
    fast = load_backend("fast").spec
    assert (fast.backbone, fast.input_size) == ("mobilenet_v2_s16", (224, 224))


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_weights_load_weights_only_and_give_the_shipped_onnx_logits(name, val_files):
    state = torch.load(MODELS_DIR / f"{name}.pth", map_location="cpu", weights_only=True)  # no pickled code inside
    assert set(state) == {"spec", "model"}  # deployable weights and their contract; no optimizer state
    model, spec, _ = load_model(name)
    tools = {"training": {}, "versions": {}, "cost": {}}  # export adds versions and GMAC; the contract must match
    assert spec.to_dict() | tools == read_spec(resolve_model(name)).to_dict() | tools
    inputs = inputs_for(name, val_files)
    with torch.no_grad():
        eager = model(torch.from_numpy(np.concatenate(inputs))).numpy()
    shipped = np.concatenate(onnx_logits(resolve_model(name), inputs))
    assert np.abs(eager - shipped).max() < 1e-3
    assert ((eager > 0) == (shipped > 0)).mean() > 0.9999


def test_export_of_the_shipped_weights_reproduces_default_onnx(people, val_files, tmp_path):
    out = tmp_path / "again.onnx"
    result = segedge_in_process("export", "default", "-o", out, "--calib", people / "val")
    assert result.returncode == 0, result.stderr
    val_inputs = inputs_for("default", val_files)
    again, shipped = onnx_logits(out, val_inputs), onnx_logits(DEFAULT_MODEL, val_inputs)
    assert max(np.abs(a - b).max() for a, b in zip(again, shipped, strict=True)) < 1e-3


def test_unknown_names_list_the_embedded_models(tmp_path):
    photo = tmp_path / "p.jpg"
    import cv2

    cv2.imwrite(str(photo), np.full((32, 32, 3), 128, np.uint8))
    assert_one_line_error(segedge_in_process("run", photo, "--engine", "defualt"), "defualt", "default-int8")
    assert_one_line_error(segedge_in_process("export", "nosuch"), "nosuch", "embedded")


def test_run_and_eval_accept_names(people, tiny_data, tmp_path):
    image = sample(image_files(people / "val-portraits"), 1)[0]
    out = tmp_path / "cut.png"
    assert segedge_in_process("run", image, "--engine", "default-int8", "--effect", "mask", "-o", out).returncode == 0
    assert out.stat().st_size > 0
    result = segedge_in_process("eval", tiny_data / "val", "--engine", "default", "--json", "--quiet")
    assert result.returncode == 0, result.stderr
    assert " default.onnx " in json.loads(result.stdout)["model"]


def test_fast_runs_by_name_and_scores_like_a_person_model(people, tiny_data, tmp_path):
    from segedge.runtime import Segmenter

    image = sample(image_files(people / "val-portraits"), 1)[0]
    out = tmp_path / "cut.png"
    assert segedge_in_process("run", image, "--engine", "fast", "--effect", "mask", "-o", out).returncode == 0
    assert out.stat().st_size > 0
    segmenter = Segmenter("fast")
    assert segmenter.spec.input_size == (224, 224) and "fast.onnx" in repr(segmenter)
    frame = read_image(image)
    matte = segmenter.mask(frame)
    assert matte.shape == frame.shape[:2] and 0.05 < (matte > 0.5).mean() < 0.95  # a person, not all or nothing
    result = segedge_in_process("eval", tiny_data / "val", "--engine", "fast", "--json", "--quiet")
    assert result.returncode == 0, result.stderr
    scores = json.loads(result.stdout)
    assert " fast.onnx " in scores["model"]
    assert scores["iou"] > 0.8  # 0.925 on all of val; a broken model or pre-processing lands far below


@pytest.mark.parametrize("name", SHIPPED)
def test_fine_tune_starts_from_the_shipped_weights(name, tiny_data, tmp_path):
    from segedge.training.checkpoint import read_checkpoint
    from segedge.training.train import TrainConfig, train

    train(TrainConfig(data=tiny_data, out=tmp_path, init=name, epochs=1, batch_size=4, lr=1e-6, workers=0,
                      threads=2, quiet=True, crop=64))  # 64x64 crops: the plumbing at 1/25 of the arithmetic
    state = read_checkpoint(tmp_path / "last.pth")
    assert state["spec"]["training"]["init"] == name
    assert tuple(state["spec"]["input_size"]) == read_spec(resolve_model(name)).input_size  # kept, not 256
    shipped = torch.load(MODELS_DIR / f"{name}.pth", weights_only=True)["model"]
    tuned = state["model"]
    convs = [k for k, v in shipped.items() if k.endswith("weight") and v.dim() == 4]
    # two steps at lr 1e-6 move each conv by far less than its own scale: the run started from the shipped weights
    assert all(torch.allclose(tuned[k], shipped[k], atol=1e-3) for k in convs)
    model, _, _ = load_model(tmp_path / "last.pth")
    inputs = torch.from_numpy(inputs_for(name, sample(image_files(tiny_data / "val"), 1))[0])
    with torch.no_grad():
        tuned_mask = model(inputs)[0, 0].numpy() > 0
    assert mask_metrics(tuned_mask, onnx_logits(resolve_model(name), [inputs.numpy()])[0][0, 0] > 0)["iou"] > 0.9


def test_weights_recovered_from_onnx_compute_the_same_model(tiny_data, tmp_path):
    """Plumbing on a tiny model whose BatchNorms are far from identity, so a wrong fold or name mapping shows."""
    from segedge.export.onnx import export_checkpoint
    from segedge.training.checkpoint import save_checkpoint
    from segedge.training.from_onnx import recover
    from segedge.training.model import build_model

    from segedge.spec import ModelSpec

    torch.manual_seed(0)
    spec = ModelSpec(head_channels=16, separable=True, input_size=(64, 64))
    original = build_model(spec).eval()
    for module in original.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            for tensor in (module.weight, module.bias, module.running_mean):
                torch.nn.init.uniform_(tensor, -1.0, 1.0)
            torch.nn.init.uniform_(module.running_var, 0.5, 2.0)
    save_checkpoint(tmp_path / "m.pth", {"model": original.state_dict(), "spec": spec.to_dict()})
    onnx_path = export_checkpoint(tmp_path / "m.pth", tmp_path / "m.onnx")
    recovered, recovered_spec = recover(onnx_path, calib=tiny_data / "train")
    assert recovered_spec.architecture() == spec.architecture()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        expected, got = original(x), recovered(x)
    assert torch.allclose(got, expected, atol=1e-4 * max(1.0, expected.abs().max().item()))
    variances = [m.running_var for m in recovered.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert not all(torch.allclose(v, torch.ones_like(v), atol=1e-3) for v in variances)  # measured, not identity
