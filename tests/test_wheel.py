"""What users install: the built wheel, installed without -e and without torch into a clean venv, pinned by the lock.

An editable install hides a package missing from the wheel; these tests run the CLI from the installed wheel only.
"""

import contextlib
import fcntl
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from helpers import make_video

from segedge.backends import MODELS_DIR

REPO = Path(__file__).resolve().parent.parent
LOCK = REPO / "requirements" / "lock.txt"
MAPPED = {"segedge": "segedge", "training": "segedge/training", "export": "segedge/export"}  # pyproject's package-dir


@contextlib.contextmanager
def built_once(tmp_path_factory, name: str):
    """A folder every pytest-xdist worker shares, and True when this caller must fill it: the first worker builds
    the wheel and its venv, the other waits on the lock and reuses them (each costs ~25 s of a 2-core run)."""
    folder = tmp_path_factory.getbasetemp().parent / name  # the run's root, common to all workers
    folder.mkdir(exist_ok=True)
    with open(folder.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        done = folder / ".done"
        yield folder, not done.exists()
        done.touch()


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    with built_once(tmp_path_factory, "wheel") as (out, build):
        if build:
            subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
                            str(out), str(REPO)], check=True, capture_output=True)
    return next(out.glob("segedge-*.whl"))


def tree_packages() -> set[str]:
    """Every Python package of the source tree, named by where the wheel must hold it."""
    packages = set()
    for folder, target in MAPPED.items():
        for init in (REPO / folder).glob("**/__init__.py"):
            packages.add("/".join([target, *init.parent.relative_to(REPO / folder).parts]))
    return packages


def test_wheel_holds_every_package_the_models_and_the_license(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    in_wheel = {name.rsplit("/", 1)[0] for name in names if name.endswith("/__init__.py")}
    assert tree_packages() - in_wheel == set()
    shipped = {f"segedge/models/{path.name}" for path in MODELS_DIR.iterdir() if path.suffix in (".onnx", ".pth")}
    assert {"segedge/models/default.onnx", "segedge/models/default.fp16.onnx", "segedge/models/fast.onnx"} <= shipped
    assert shipped <= set(names)
    assert wheel.stat().st_size < 50e6  # issue #19's budget for every embedded model (28.5 MB with FP16 files)
    assert any(name.endswith(".dist-info/licenses/LICENSE") for name in names)


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> Path:
    """bin/ of a fresh venv holding segedge[cpu] from the wheel, dependencies pinned by the lock, and no torch."""
    with built_once(tmp_path_factory, "wheel_venv") as (folder, build):
        venv = folder / "venv"
        if build:
            # the test run's own pip installs into it: a pip in the venv and byte-compiling every dependency cost
            # 29 s against 11 s, and neither is what this test is about
            subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
            result = subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install",
                                     "-q", "--no-compile", "-c", str(LOCK), f"{wheel}[cpu]"],
                                    capture_output=True, text=True)
            assert result.returncode == 0, result.stderr[-2000:]
    return venv / "bin"


def run_installed(bin_dir: Path, *args, cwd: Path):
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return subprocess.run([str(bin_dir / "segedge"), *map(str, args)], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=300)


def test_wheel_install_has_no_torch(installed, tmp_path):
    probe = subprocess.run([str(installed / "python"), "-c", "import importlib.util as u; import segedge; "
                            "print(u.find_spec('torch') is None, segedge.__file__)"],
                           capture_output=True, text=True, cwd=tmp_path, check=True)
    no_torch, location = probe.stdout.split()
    assert no_torch == "True" and str(REPO) not in location  # the wheel's copy, not the checkout


def test_wheel_cli_help_and_image_run(installed, people, tmp_path):
    assert run_installed(installed, "--help", cwd=tmp_path).returncode == 0
    photo = shutil.copy(sorted((people / "val-portraits" / "images").iterdir())[0], tmp_path / "photo.jpg")
    result = run_installed(installed, "run", photo, "--effect", "remove", "--quiet", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "photo_remove.png").stat().st_size > 0


def test_wheel_serve_without_its_extra_names_the_extra(installed, tmp_path):
    result = run_installed(installed, "serve", cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == ("segedge: error: fastapi is not installed; install it with: "
                                                      "pip install 'segedge[serve]'")


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg CLI needed to make the test video")
def test_wheel_video_run(installed, tmp_path):
    clip = make_video(tmp_path / "clip.mp4", seconds=1)
    result = run_installed(installed, "run", clip, "--effect", "blur", "--quiet", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "clip_blur.mp4").stat().st_size > 0


def test_wheel_eval_and_bench(installed, people, tmp_path):
    for kind in ("images", "masks"):
        (tmp_path / "data" / kind).mkdir(parents=True)
    for image in sorted((people / "val-portraits" / "images").iterdir())[:2]:
        shutil.copy(image, tmp_path / "data" / "images" / image.name)
        shutil.copy(people / "val-portraits" / "masks" / f"{image.stem}.png", tmp_path / "data" / "masks")
    result = run_installed(installed, "eval", tmp_path / "data", "--json", "--quiet", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["images"] == 2
    result = run_installed(installed, "bench", "--runs", "2", "--warmup", "1", "--backends",
                           "torch,onnxruntime,onnxruntime-fp16", "--json", tmp_path / "b.json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    rows = {row["backend"]: row for row in json.loads((tmp_path / "b.json").read_text())["rows"]
            if row["name"] == "default"}
    assert rows["onnxruntime"]["status"] == "ok"
    assert rows["onnxruntime-fp16"]["status"] == "ok"  # the shipped FP16 file: no torch or onnx package needed
    assert "segedge[train]" in rows["torch"]["status"]  # says which extra adds the eager rows
