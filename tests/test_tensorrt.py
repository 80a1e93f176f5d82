"""Native TensorRT backend: the sidecar contract and version/GPU checks run here; engine execution needs a GPU."""

import subprocess
import sys

import pytest

from segedge.errors import SegedgeError
from segedge.model_files import check_engine_compatible, read_sidecar, sidecar_path, write_sidecar
from segedge.spec import ModelSpec

INFO = {"tensorrt_version": "10.3.0", "gpu": "NVIDIA A100", "compute_capability": "8.0", "precision": "fp16"}


def test_sidecar_round_trip(tmp_path):
    engine = tmp_path / "model.trt"
    spec = ModelSpec(input_size=(320, 320), precision="fp16")
    assert write_sidecar(engine, spec, INFO) == sidecar_path(engine) == tmp_path / "model.trt.json"
    read_spec, info = read_sidecar(engine)
    assert read_spec == spec and info == INFO


def test_missing_and_corrupt_sidecars_are_clear_errors(tmp_path):
    engine = tmp_path / "model.trt"
    with pytest.raises(SegedgeError, match="no sidecar"):
        read_sidecar(engine)
    sidecar_path(engine).write_text("{not json")
    with pytest.raises(SegedgeError, match="corrupt"):
        read_sidecar(engine)


@pytest.mark.parametrize("version,gpu,cc,message", [
    ("10.3.1", "NVIDIA A100", "8.0", None),  # patch releases share engines
    ("10.5.0", "NVIDIA A100", "8.0", "TensorRT 10.3.0"),
    ("10.3.0", "NVIDIA H100", "9.0", "sm 9.0"),
])
def test_engine_compatibility(version, gpu, cc, message):
    if message is None:
        check_engine_compatible(INFO, version, gpu, cc)
        return
    with pytest.raises(SegedgeError, match=message) as error:
        check_engine_compatible(INFO, version, gpu, cc)
    assert "segedge export" in str(error.value)  # says how to rebuild


def test_engine_without_tensorrt_is_a_one_line_error(tmp_path, people):
    pytest.importorskip("numpy")
    try:
        import tensorrt  # noqa: F401

        pytest.skip("TensorRT is installed here; this checks the message shown without it")
    except ImportError:
        pass
    engine = tmp_path / "model.trt"
    engine.write_bytes(b"engine")
    write_sidecar(engine, ModelSpec(), INFO)
    image = sorted((people / "val" / "images").iterdir())[0]
    result = subprocess.run([sys.executable, "-m", "segedge.cli", "run", str(image), "--engine", str(engine),
                             "-o", str(tmp_path / "out.jpg"), "--quiet"], capture_output=True, text=True)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "segedge[trt]" in result.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "out.jpg").exists()


@pytest.mark.tensorrt
def test_engine_builds_and_matches_onnxruntime(tiny_checkpoint, tiny_onnx, tmp_path):
    pytest.importorskip("tensorrt", reason="TensorRT is not installable on this machine (NVIDIA index unreachable)")
    pytest.importorskip("cuda.bindings", reason="cuda-python needed for device buffers")
    import numpy as np

    from segedge.backends import load_backend

    engine = tmp_path / "tiny.trt"
    result = subprocess.run([sys.executable, "-m", "segedge.cli", "export", str(tiny_checkpoint), "--format", "trt",
                             "--precision", "fp32", "-o", str(engine)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    batch = np.random.default_rng(0).standard_normal((1, 3, 64, 64)).astype(np.float32)
    expected = load_backend(tiny_onnx).infer(batch)  # the same checkpoint through onnxruntime
    assert np.abs(load_backend(engine).infer(batch) - expected).max() < 1e-3


def test_same_architecture_other_gpu_model_only_warns(caplog):
    check_engine_compatible(INFO, "10.3.0", "NVIDIA A30", "8.0")
    assert "NVIDIA A30" in caplog.text and "WARNING" in caplog.text


def test_sidecar_write_is_atomic_and_leaves_no_temp_file(tmp_path):
    engine = tmp_path / "model.trt"
    with pytest.raises(TypeError):
        write_sidecar(engine, ModelSpec(), {"not json": object()})
    assert list(tmp_path.iterdir()) == []
    write_sidecar(engine, ModelSpec(), INFO)
    assert [p.name for p in tmp_path.iterdir()] == ["model.trt.json"]


@pytest.mark.parametrize("shape,allowed", [((1, 3, 256, 256), True), ((4, 3, 512, 384), True),
                                           ((5, 3, 256, 256), False), ((1, 3, 112, 256), False),
                                           ((1, 3, 256), False)])
def test_profile_allows_shapes_within_min_max(shape, allowed):
    from segedge.backends.tensorrt import profile_allows

    shapes = {"min": [1, 3, 128, 128], "opt": [1, 3, 256, 256], "max": [4, 3, 512, 512]}
    assert profile_allows(shape, shapes) is allowed
    assert profile_allows(shape, None) is True  # no profile recorded: TensorRT decides
