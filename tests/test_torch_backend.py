"""The eager torch backend: the reference every exported model is compared with."""

import logging
import subprocess
import sys

import numpy as np
import pytest

from segedge.backends import load_backend
from segedge.errors import SegedgeError


def test_torch_backend_matches_onnxruntime(tiny_checkpoint, tiny_onnx):
    batch = np.random.default_rng(0).standard_normal((2, 3, 64, 64)).astype(np.float32)
    eager = load_backend(tiny_checkpoint, backend="cpu")
    assert eager.name == "torch" and eager.device == "cpu" and eager.spec.input_size == (64, 64)
    logits = eager.infer(batch)
    assert logits.dtype == np.float32 and logits.shape == (2, 1, 64, 64)
    onnx_batch = np.concatenate([load_backend(tiny_onnx).infer(b[None]) for b in batch])
    assert np.abs(logits - onnx_batch).max() < 1e-3


def test_cuda_fallback_to_cpu_is_loud(tiny_checkpoint, caplog):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("a CUDA GPU is present, so there is no fallback to see")
    with caplog.at_level(logging.WARNING, logger="segedge"):
        backend = load_backend(tiny_checkpoint, backend="cuda")
    assert backend.device == "cpu"
    assert any("cuda" in r.message and "CPU" in r.message for r in caplog.records)


def test_unknown_device_is_a_user_error(tiny_checkpoint):
    with pytest.raises(SegedgeError, match="unknown backend"):
        load_backend(tiny_checkpoint, backend="tpu")


def test_not_a_checkpoint_is_a_user_error(tmp_path):
    fake = tmp_path / "model.pth"
    fake.write_text("not a checkpoint")
    with pytest.raises(SegedgeError, match="model.pth"):
        load_backend(fake, backend="cpu")


def test_missing_torch_names_the_extra(tiny_checkpoint):
    # sys.modules[name] = None makes `import name` raise ImportError: torch is absent for this interpreter only.
    code = ("import sys; sys.modules['torch'] = None\n"
            "from segedge.backends import load_backend\n"
            "from segedge.errors import SegedgeError\n"
            f"try:\n    load_backend({str(tiny_checkpoint)!r})\n"
            "except SegedgeError as exc:\n    print(exc)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "torch is not installed" in result.stdout and "segedge[train]" in result.stdout
