"""`import segedge` stays light: no torch, no onnxruntime until a model is used."""

import subprocess
import sys


def test_import_segedge_leaves_torch_unimported():
    code = ("import sys, segedge, segedge.cli; "
            "heavy = [m for m in ('torch', 'torchvision', 'onnxruntime', 'tensorrt') if m in sys.modules]; "
            "print(heavy); assert not heavy, heavy")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_cli_lists_every_command():
    result = subprocess.run([sys.executable, "-m", "segedge.cli", "--help"], capture_output=True, text=True)
    assert result.returncode == 0
    for command in ("train", "export", "run", "eval", "bench"):
        assert command in result.stdout
