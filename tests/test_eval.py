"""`segedge eval` and the torch reference backend on real val images."""

import json
import shutil
import subprocess
import sys

import pytest

SEGEDGE = [sys.executable, "-m", "segedge.cli"]


def copy_pairs(images, masks, root):
    """A data folder at `root` holding these images and their masks from the folder `masks`."""
    for kind in ("images", "masks"):
        (root / kind).mkdir(parents=True)
    for image in images:
        shutil.copy(image, root / "images" / image.name)
        shutil.copy(masks / f"{image.stem}.png", root / "masks" / f"{image.stem}.png")
    return root


@pytest.fixture(scope="module")
def few_val(people, tmp_path_factory):
    return copy_pairs(sorted((people / "val" / "images").iterdir())[:3], people / "val" / "masks",
                      tmp_path_factory.mktemp("few_val"))


@pytest.fixture(scope="module")
def two_sources(people, tmp_path_factory):
    """Three ccp_* and two vik_* val pairs in one folder."""
    images = sorted((people / "val" / "images").iterdir())
    picked = [p for p in images if p.name.startswith("ccp_")][:3] + [p for p in images if p.name.startswith("vik_")][:2]
    return copy_pairs(picked, people / "val" / "masks", tmp_path_factory.mktemp("two_sources"))


def run_eval(*args):
    return subprocess.run([*SEGEDGE, "eval", *map(str, args)], capture_output=True, text=True)


def test_eval_json_has_the_documented_keys(tiny_onnx, few_val):
    result = run_eval("--engine", tiny_onnx, few_val, "--json")
    assert result.returncode == 0, result.stderr
    scores = json.loads(result.stdout)
    assert {"iou", "boundary_iou", "miou", "dice", "pixel_accuracy", "images", "ms_per_image", "model"} <= scores.keys()
    assert scores["images"] == 3 and scores["ms_per_image"] > 0 and scores["tta"] is False
    for key in ("iou", "boundary_iou", "miou", "dice", "pixel_accuracy"):
        assert 0.0 <= scores[key] <= 1.0


def test_eval_reports_each_source_as_if_it_were_its_own_folder(tiny_onnx, two_sources, tmp_path):
    """by_source["vik"] is what eval gives a folder holding only the vik_* pairs; the table has a row per source."""
    from segedge.evaluate import evaluate
    from segedge.runtime import Segmenter

    result = run_eval("--engine", tiny_onnx, two_sources, "--json", "--quiet")
    assert result.returncode == 0, result.stderr
    by_source = json.loads(result.stdout)["by_source"]
    assert {source: scores["images"] for source, scores in by_source.items()} == {"ccp": 3, "vik": 2}
    vik_only = copy_pairs(sorted((two_sources / "images").glob("vik_*")), two_sources / "masks", tmp_path / "vik")
    alone = evaluate(Segmenter(tiny_onnx), vik_only, quiet=True)
    for key in ("iou", "boundary_iou", "miou", "dice", "pixel_accuracy"):
        assert by_source["vik"][key] == pytest.approx(alone[key], abs=1e-5)
    table = run_eval("--engine", tiny_onnx, two_sources, "--quiet").stdout
    rows = {line.split()[0]: line.split()[1:] for line in table.splitlines()[2:]}
    assert rows["ccp"][0] == "3" and rows["vik"] == ["2", f"{by_source['vik']['iou']:.4f}",
                                                      f"{by_source['vik']['boundary_iou']:.4f}"]


def test_eval_matches_training_validation(tiny_checkpoint, tiny_onnx, few_val):
    """The training log and `segedge eval` must report the same figure for the same model."""
    from segedge.training.checkpoint import load_model
    from segedge.training.data import find_pairs
    from segedge.training.train import evaluate_folder

    from segedge.evaluate import evaluate
    from segedge.runtime import Segmenter

    model, spec, _ = load_model(tiny_checkpoint)
    reference = evaluate_folder(model, spec, find_pairs(few_val), __import__("torch").device("cpu"))
    for engine in (tiny_checkpoint, tiny_onnx):
        scores = evaluate(Segmenter(engine, refine=False), few_val, quiet=True)
        assert scores["iou"] == pytest.approx(reference["iou"], abs=1e-3)
        assert scores["pixel_accuracy"] == pytest.approx(reference["pixel_accuracy"], abs=1e-3)


def test_refined_eval_scores_the_matte_segedge_run_outputs(few_val):
    """Default eval = the guided-upsampled matte of Segmenter.mask, thresholded; --no-refine = bilinear."""
    import numpy as np

    from segedge.evaluate import evaluate
    from segedge.media import read_image
    from segedge.metrics import MetricAverager
    from segedge.pairs import find_pairs, read_mask
    from segedge.runtime import Segmenter

    segmenter = Segmenter()
    expected = MetricAverager()
    for image_path, mask_path in find_pairs(few_val):
        expected.add(segmenter.mask(read_image(image_path)) > 0.5, read_mask(mask_path) > 0)
    refined = evaluate(segmenter, few_val, quiet=True)
    assert refined["upsampling"] == "guided"
    assert refined["iou"] == pytest.approx(expected.result()["iou"], abs=1e-4)
    plain = evaluate(Segmenter(refine=False), few_val, quiet=True)
    assert plain["upsampling"] == "bilinear" and 0.8 < plain["iou"] <= 1.0
    assert not np.isclose(plain["pixel_accuracy"], refined["pixel_accuracy"], atol=1e-7)


def test_unpaired_files_are_reported_by_name(tiny_onnx, few_val, tmp_path):
    folder = tmp_path / "data"
    shutil.copytree(few_val, folder)
    lonely_mask = sorted((folder / "masks").iterdir())[0]
    lonely_mask.rename(folder / "masks" / "orphan.png")
    result = run_eval("--engine", tiny_onnx, folder, "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["images"] == 2
    assert "orphan.png" in result.stderr and lonely_mask.stem in result.stderr


@pytest.mark.parametrize("layout", ["missing", "no-masks", "mismatched"])
def test_bad_data_folders_are_one_line_errors(tiny_onnx, few_val, tmp_path, layout):
    folder = tmp_path / "data"
    if layout == "no-masks":
        shutil.copytree(few_val / "images", folder / "images")
    elif layout == "mismatched":
        shutil.copytree(few_val / "images", folder / "images")
        (folder / "masks").mkdir()
        (folder / "masks" / "someone_else.png").write_bytes(b"")
    result = run_eval("--engine", tiny_onnx, folder)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("segedge: error:")


def test_unreadable_files_are_reported_by_name(tiny_onnx, few_val, tmp_path):
    folder = tmp_path / "data"
    shutil.copytree(few_val, folder)
    broken = sorted((folder / "images").iterdir())[0]
    broken.write_bytes(b"not a jpeg")
    result = run_eval("--engine", tiny_onnx, folder, "--quiet")
    assert result.returncode == 0, result.stderr
    assert broken.name in result.stderr and "2 images" in result.stdout
    assert f"skipped 1 unreadable or mismatched: {broken.name}" in result.stdout


def test_threshold_out_of_range_is_a_user_error(tiny_onnx, few_val):
    result = run_eval("--engine", tiny_onnx, few_val, "--threshold", "1.5")
    assert result.returncode == 2 and "threshold 1.5" in result.stderr and "Traceback" not in result.stderr


def test_eval_with_tta_scores_the_averaged_output(tiny_onnx, few_val):
    from segedge.evaluate import evaluate
    from segedge.runtime import Segmenter

    plain, tta = (evaluate(Segmenter(tiny_onnx, tta=flag), few_val, quiet=True, limit=1) for flag in (False, True))
    assert tta["tta"] is True and "mirror TTA" in tta["model"] and plain["tta"] is False
