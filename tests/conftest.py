"""Shared fixtures: real images from ../shared and a tiny (untrained) model as checkpoint and ONNX.

Tiny models keep the default test run fast on 2 cores; accuracy of the shipped model is tested separately.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PEOPLE = REPO.parent / "shared" / "data" / "people"


# Module fixtures that cost seconds to build (a Ray runtime, a briefly trained model, a bench run): their tests run
# first, in this order. pytest-xdist's worksteal hands each worker a contiguous share of the list and steals from
# the ends, so they stay together on the first worker and each fixture is built once, not once per worker.
COSTLY_FIXTURES = ("ray_address", "trained", "bench_run")


def pytest_collection_modifyitems(items):
    def rank(item) -> int:
        return next((i for i, name in enumerate(COSTLY_FIXTURES) if name in item.fixturenames), len(COSTLY_FIXTURES))

    items.sort(key=rank)  # stable: the rest keep their order


def pytest_configure(config):
    import cv2

    cv2.setNumThreads(1)


@pytest.fixture(scope="session")
def people() -> Path:
    if not (PEOPLE / "train" / "images").is_dir():
        pytest.skip(f"shared data not found at {PEOPLE}")
    return PEOPLE


@pytest.fixture(scope="session")
def tiny_data(people, tmp_path_factory) -> Path:
    """DIR/{train,val}/{images,masks} with 8 train and 4 val real pairs."""
    root = tmp_path_factory.mktemp("tiny_data")
    for split, source, count in (("train", "train", 8), ("val", "val", 4)):
        images = sorted((people / source / "images").iterdir())[:count]
        for kind in ("images", "masks"):
            (root / split / kind).mkdir(parents=True)
        for image in images:
            shutil.copy(image, root / split / "images" / image.name)
            shutil.copy(people / source / "masks" / f"{image.stem}.png", root / split / "masks" / f"{image.stem}.png")
    return root


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """A segedge checkpoint of a small random-init MobileNetV2 DeepLabv3+ at 64x64."""
    torch = pytest.importorskip("torch")
    from segedge.training.checkpoint import save_checkpoint
    from segedge.training.model import build_model

    from segedge.spec import ModelSpec

    torch.manual_seed(0)
    spec = ModelSpec(backbone="mobilenet_v2", head_channels=16, separable=True, input_size=(64, 64))
    model = build_model(spec).eval()
    path = tmp_path_factory.mktemp("tiny_ckpt") / "tiny.pth"
    save_checkpoint(path, {"model": model.state_dict(), "spec": spec.to_dict(), "epoch": 0})
    return path


@pytest.fixture(scope="session")
def tiny_onnx(tiny_checkpoint, tmp_path_factory) -> Path:
    """The tiny checkpoint exported to ONNX (fixed 64x64) with its spec in the metadata."""
    from segedge.export.onnx import export_checkpoint

    return export_checkpoint(tiny_checkpoint, tmp_path_factory.mktemp("tiny_onnx") / "tiny.onnx")
