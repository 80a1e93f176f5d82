"""`import segedge` stays light: no torch, no onnxruntime until a model is used, no FastAPI until `segedge serve`,
no ray until --ray."""

import subprocess
import sys

import pytest
from helpers import assert_one_line_error, segedge_in_process


def test_import_segedge_leaves_torch_unimported():
    code = ("import sys, segedge, segedge.cli; "
            "heavy = ('torch', 'torchvision', 'onnxruntime', 'tensorrt', 'fastapi', 'uvicorn', 'ray'); "
            "heavy = [m for m in heavy if m in sys.modules]; "
            "print(heavy); assert not heavy, heavy")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_cli_lists_every_command():
    result = subprocess.run([sys.executable, "-m", "segedge.cli", "--help"], capture_output=True, text=True)
    assert result.returncode == 0
    for command in ("train", "export", "run", "eval", "bench", "serve"):
        assert command in result.stdout


def test_reduced_precision_export_leaves_torch_unimported():
    """FP16/INT8 conversion is ONNX work: bench and the runtime reuse it without the torch side."""
    code = ("import sys, segedge.export.precision, segedge.model_files; "
            "heavy = [m for m in ('torch', 'torchvision') if m in sys.modules]; print(heavy); assert not heavy, heavy")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_bench_fp16_row_of_an_onnx_model_leaves_torch_unimported(tiny_onnx, tmp_path):
    code = ("import sys; from pathlib import Path; "
            "from segedge.bench import BenchOptions, run_bench, write_json; "
            f"rows, _ = run_bench(BenchOptions(engines=[Path({str(tiny_onnx)!r})], runs=1, warmup=0, threads=1, "
            "backends=('onnxruntime', 'onnxruntime-fp16')), echo=lambda line: None); "
            f"write_json(rows, Path({str(tmp_path / 'b.json')!r})); "
            "assert [r.status for r in rows] == ['ok', 'ok'], rows; "
            "assert 'torch' not in sys.modules, 'torch was imported'")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_run_on_a_photo_imports_only_what_it_needs(tmp_path):
    """Start-up is most of a one-photo `segedge run` (issue #20: <= 0.4 s): no torch, and no pydantic (typer >= 0.29
    imports it to coerce every option; the lock keeps typer below that), no tqdm (it reads package metadata; only
    folders and videos show a progress bar), no http.server (only --preview serves a page), no other command."""
    import cv2
    import numpy as np

    photo = tmp_path / "p.jpg"
    cv2.imwrite(str(photo), np.full((48, 64, 3), 128, np.uint8))
    code = ("import sys; from segedge.cli import main\n"
            f"try: main(['run', {str(photo)!r}, '-o', {str(tmp_path / 'o.jpg')!r}, '--engine', 'fast', '--quiet'])\n"
            "except SystemExit as exit: assert not exit.code, exit.code\n"
            "heavy = [m for m in ('torch', 'pydantic', 'tensorrt', 'tqdm', 'http.server', 'ray') if m in sys.modules]\n"
            "others = [m for m in sys.modules if m.startswith('segedge.commands.') and m != 'segedge.commands.run']\n"
            "assert not heavy and not others, (heavy, others)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "o.jpg").stat().st_size > 0


@pytest.mark.parametrize("command", [("run", "photos", "--ray"), ("serve", "--ray")])
def test_ray_paths_without_ray_name_the_extra(command, monkeypatch, tmp_path):
    """Without ray installed (None in sys.modules makes it unimportable), --ray is a one-line error naming the extra."""
    (tmp_path / "photos").mkdir()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(sys.modules, "ray", None)
    result = segedge_in_process(*command)
    assert_one_line_error(result, "pip install 'segedge[ray]'")
