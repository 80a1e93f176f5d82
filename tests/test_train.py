"""A real (tiny) training run: checkpoints, exact resume, logged val IoU, and clear errors for bad data."""

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
from helpers import segedge_in_process

torch = pytest.importorskip("torch")

from segedge.training.checkpoint import load_model, read_checkpoint  # noqa: E402
from segedge.training.data import find_pairs  # noqa: E402
from segedge.training.train import TrainConfig, train  # noqa: E402

from segedge.errors import SegedgeError  # noqa: E402


def _config(data, out, **overrides):
    options = dict(data=data, out=out, size=64, epochs=2, batch_size=4, head_channels=16, separable=True,
                   workers=0, threads=1, quiet=True, ema=0.9)
    options.update(overrides)
    return TrainConfig(**options)


@pytest.fixture(scope="module")
def two_epoch_run(tiny_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    train(_config(tiny_data, out))
    return out


def test_two_epochs_write_checkpoints_metrics_and_plot(two_epoch_run):
    rows = [json.loads(line) for line in (two_epoch_run / "metrics.jsonl").read_text().splitlines()]
    assert [row["epoch"] for row in rows] == [1, 2]
    for row in rows:
        assert 0.0 <= row["val/iou"] <= 1.0 and 0.0 <= row["val/pixel_accuracy"] <= 1.0
        assert row["train_loss"] > 0
    assert (two_epoch_run / "curves.png").stat().st_size > 1000
    state = read_checkpoint(two_epoch_run / "last.pth")
    assert state["epoch"] == 2 and {"optimizer", "scheduler", "spec", "model", "ema"} <= state.keys()
    model, spec, _ = load_model(two_epoch_run / "best.pth")
    assert spec.input_size == (64, 64) and spec.head_channels == 16
    assert model(torch.zeros(1, 3, 64, 64)).shape == (1, 1, 64, 64)


def test_resume_continues_from_saved_epoch(two_epoch_run, tiny_data, tmp_path):
    out = tmp_path / "resumed"
    shutil.copytree(two_epoch_run, out)
    before = read_checkpoint(out / "last.pth")
    train(_config(tiny_data, out, epochs=3, resume=out / "last.pth"))
    after = read_checkpoint(out / "last.pth")
    assert after["epoch"] == 3
    assert [row["epoch"] for row in after["history"]] == [1, 2, 3]
    assert after["scheduler"]["last_epoch"] == before["scheduler"]["last_epoch"] + 2  # 8 pairs / batch 4
    lines = (out / "metrics.jsonl").read_text().splitlines()
    assert json.loads(lines[-1])["epoch"] == 3
    assert after["spec"]["training"]["epochs"] == 3  # the spec records the schedule the run finished with


def test_classic_state_dict_checkpoint_needs_and_accepts_a_config(two_epoch_run, tmp_path):
    state = read_checkpoint(two_epoch_run / "last.pth")
    classic = tmp_path / "classic.pth"
    torch.save({"state_dict": state["model"], "optimizer": state["optimizer"]}, classic)
    with pytest.raises(SegedgeError, match="no model config"):
        load_model(classic)
    from segedge.spec import ModelSpec

    model, spec, _ = load_model(classic, ModelSpec.from_dict(state["spec"]))
    assert spec.backbone == "mobilenet_v2"


def test_unpaired_files_are_reported_by_name(tiny_data, tmp_path, caplog):
    folder = tmp_path / "val"
    shutil.copytree(tiny_data / "val", folder)
    first_mask = sorted((folder / "masks").iterdir())[0]
    first_mask.unlink()
    (folder / "masks" / "orphan.png").write_bytes(first_mask.name.encode())
    with caplog.at_level("WARNING"):
        pairs = find_pairs(folder)
    assert len(pairs) == 3
    assert first_mask.stem in caplog.text and "orphan.png" in caplog.text


def test_classic_layout_is_accepted(tiny_data, tmp_path):
    root = tmp_path / "classic"
    for split, classic in (("train", "train"), ("val", "test")):
        shutil.copytree(tiny_data / split / "images", root / classic / "image")
        shutil.copytree(tiny_data / split / "masks", root / classic / "mask")
    out = tmp_path / "out"
    train(_config(root, out, epochs=1))
    row = json.loads((out / "metrics.jsonl").read_text().splitlines()[0])
    assert "test/iou" in row


def test_unreadable_and_mismatched_pairs_are_skipped_with_warning(tiny_data, tmp_path, caplog):
    import cv2

    root = tmp_path / "data"
    shutil.copytree(tiny_data, root)
    images = sorted((root / "train" / "images").iterdir())
    images[0].write_bytes(b"not a jpeg")
    mask = root / "train" / "masks" / f"{images[1].stem}.png"
    cv2.imwrite(str(mask), cv2.imread(str(mask))[:10, :10])
    with caplog.at_level("WARNING"):
        train(_config(root, tmp_path / "out", epochs=1))
    assert images[0].name in caplog.text and "size mismatch" in caplog.text


@pytest.mark.parametrize("layout", ["missing", "empty", "no-train"])
def test_bad_data_dirs_give_one_line_error(tmp_path, layout):
    data = tmp_path / "data"
    if layout == "empty":
        (data / "train" / "images").mkdir(parents=True)
        (data / "train" / "masks").mkdir(parents=True)
    elif layout == "no-train":
        (data / "val").mkdir(parents=True)
    result = segedge_in_process("train", "--data", data, "--out", tmp_path / "o", "--quiet")
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().startswith("segedge: error:") and len(result.stderr.strip().splitlines()) == 1


def test_extra_val_folders_add_to_data_val(tiny_data, tmp_path):
    from segedge.training.train import val_folders

    extra = tmp_path / "val-portraits"
    shutil.copytree(tiny_data / "val", extra)
    folders = val_folders(_config(tiny_data, tmp_path / "out", val=[extra, extra]))
    assert [f.name for f in folders] == ["val", "val-portraits"]


@pytest.mark.slow  # two processes each importing torch: ~18 s of the default run; `make test-all` runs it
def test_torchrun_distributed_training_on_cpu(tiny_data, tmp_path):
    """Two processes through torchrun (gloo on CPU): DistributedSampler splits the data, rank 0 alone writes."""
    out = tmp_path / "ddp"
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "-m", "segedge.cli", "train",
         "--data", str(tiny_data), "--out", str(out), "--size", "64", "--epochs", "1", "--batch-size", "2",
         "--head-channels", "16", "--separable", "--workers", "0", "--threads", "1", "--quiet"],
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    rows = (out / "metrics.jsonl").read_text().splitlines()
    assert len(rows) == 1  # one log line per epoch, from rank 0 only
    state = read_checkpoint(out / "last.pth")
    assert state["epoch"] == 1
    assert state["scheduler"]["last_epoch"] == 2  # 8 pairs over 2 ranks at batch 2: 2 steps per rank


def test_fine_tune_starts_from_init_weights_and_repeats_a_source(two_epoch_run, tiny_data, tmp_path):
    out = tmp_path / "ft"
    train(_config(tiny_data, out, epochs=1, lr=1e-9, ema=0.0, head_channels=99, separable=False,
                  init=two_epoch_run / "best.pth", repeat={"ccp": 2}))
    state = read_checkpoint(out / "last.pth")
    spec = state["spec"]
    assert (spec["head_channels"], spec["separable"]) == (16, True)  # architecture comes from the init checkpoint
    assert spec["training"]["init"].endswith("best.pth") and spec["training"]["repeat"] == {"ccp": 2}
    assert state["scheduler"]["last_epoch"] == 4  # 8 ccp_ pairs shown twice = 16 pairs / batch 4
    init_weights = load_model(two_epoch_run / "best.pth")[0].state_dict()
    tuned = state["model"]
    conv = next(k for k, v in init_weights.items() if k.endswith("weight") and v.ndim == 4)
    assert torch.allclose(tuned[conv], init_weights[conv], atol=1e-6)  # lr ~0: the weights are the init's


def test_repeat_prefix_matching_nothing_is_an_error(tiny_data, tmp_path):
    with pytest.raises(SegedgeError, match="--repeat nope"):
        train(_config(tiny_data, tmp_path / "r", epochs=1, repeat={"nope": 2}))


def test_init_and_pretrained_together_are_rejected(two_epoch_run, tiny_data, tmp_path):
    with pytest.raises(SegedgeError, match="drop --pretrained"):
        train(_config(tiny_data, tmp_path / "r", init=two_epoch_run / "best.pth", pretrained=tmp_path / "x.pt"))


def test_repeat_option_parsing():
    import typer

    from segedge.commands.train import parse_repeat

    assert parse_repeat(["voc=2", "vik=3"]) == {"voc": 2, "vik": 3}
    for bad in ("voc", "voc=0", "=2", "voc=two"):
        with pytest.raises(typer.BadParameter, match="PREFIX=N"):
            parse_repeat([bad])


# --- distillation from a teacher's soft mattes and the fast model's options (issue #20) ---


def test_distillation_caches_teacher_mattes_and_trains_a_fast_model(tiny_data, tiny_onnx, tmp_path):
    out, cache = tmp_path / "fast", tmp_path / "mattes"
    train(_config(tiny_data, out, epochs=1, backbone="mobilenet_v2_s16", aspp_rates=(3,), decoder_convs=1,
                  low_level_channels=8, teacher=tiny_onnx, distill_weight=0.5, teacher_cache=cache))
    folders = list(cache.iterdir())
    assert len(folders) == 1 and folders[0].name.startswith("tiny-")  # named after the teacher's content
    assert len(list(folders[0].glob("*.png"))) == 8  # one matte per training image
    import cv2

    image = sorted((tiny_data / "train" / "images").iterdir())[0]
    matte = cv2.imread(str(folders[0] / f"{image.stem}.png"), cv2.IMREAD_UNCHANGED)
    assert matte.dtype == np.uint8 and matte.shape == cv2.imread(str(image)).shape[:2]  # at the image's size
    spec = read_checkpoint(out / "last.pth")["spec"]
    assert spec["training"]["teacher"] == str(tiny_onnx) and spec["training"]["distill_weight"] == 0.5
    assert (spec["backbone"], spec["aspp_rates"], spec["decoder_convs"]) == ("mobilenet_v2_s16", (3,), 1)
    model, _, _ = load_model(out / "best.pth")
    assert model(torch.zeros(1, 3, 64, 64)).shape == (1, 1, 64, 64)
    stamp = folders[0].stat().st_mtime_ns, sorted(p.stat().st_mtime_ns for p in folders[0].iterdir())
    train(_config(tiny_data, tmp_path / "again", epochs=1, teacher=tiny_onnx, teacher_cache=cache))
    assert stamp == (folders[0].stat().st_mtime_ns, sorted(p.stat().st_mtime_ns for p in folders[0].iterdir()))


def test_teacher_matte_gets_the_same_augmentation_as_the_mask(tiny_data, tmp_path):
    """With the ground truth itself as the 'teacher' matte, the augmented matte must equal the augmented mask."""
    import cv2
    from segedge.training.data import SegmentationDataset

    from segedge.pairs import read_mask

    pairs = find_pairs(tiny_data / "train")
    for _, mask_path in pairs:
        cv2.imwrite(str(tmp_path / mask_path.name), (read_mask(mask_path) > 0).astype(np.uint8) * 255)
    dataset = SegmentationDataset(pairs, 64, (0.5,) * 3, (0.5,) * 3, crop=48, train=True, mattes=tmp_path)
    np.random.seed(0)
    for index in range(len(pairs)):
        image, mask, matte = dataset[index]
        assert image.shape == (3, 48, 48) and mask.shape == matte.shape == (1, 48, 48)
        assert torch.equal(mask, matte)


def test_distill_loss_adds_a_teacher_term():
    from segedge.training.losses import DiceBCELoss, DistillLoss

    logits, mask = torch.randn(2, 1, 8, 8), (torch.rand(2, 1, 8, 8) > 0.5).float()
    soft = torch.rand(2, 1, 8, 8)
    assert torch.allclose(DistillLoss(0.0)(logits, mask, soft), DiceBCELoss()(logits, mask))
    extra = torch.nn.functional.binary_cross_entropy_with_logits(logits, soft)
    assert torch.allclose(DistillLoss(2.0)(logits, mask, soft), DiceBCELoss()(logits, mask) + 2 * extra)


def test_missing_teacher_is_a_one_line_error(tiny_data, tmp_path):
    with pytest.raises(SegedgeError, match="teacher model not found"):
        train(_config(tiny_data, tmp_path / "r", epochs=1, teacher=tmp_path / "nope.onnx",
                      teacher_cache=tmp_path / "c"))


def test_aspp_rates_option_parsing():
    import typer

    from segedge.commands.train import parse_rates

    assert parse_rates("6,12,18") == (6, 12, 18) and parse_rates("3") == (3,)
    assert parse_rates("none") == () == parse_rates("")
    for bad in ("a,b", "0", "3,-1"):
        with pytest.raises(typer.BadParameter):
            parse_rates(bad)
