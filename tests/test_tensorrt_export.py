"""TensorRT export: everything that does not need TensorRT (profiles, flags, trtexec command, sidecar info)
runs here; building a real engine needs TensorRT and an NVIDIA GPU, which this machine cannot have."""

from __future__ import annotations

import os
import shutil

import pytest
from helpers import segedge_in_process

from segedge.errors import SegedgeError
from segedge.spec import ModelSpec

trt_export = pytest.importorskip("segedge.export.tensorrt", reason="export extra (torch, onnx) not installed")

HAS_TENSORRT = trt_export.tensorrt_module() is not None
HAS_TRTEXEC = shutil.which("trtexec") is not None


def request(tmp_path, dynamic=False, precision="fp16", batch=1, size=(256, 320)):
    spec = ModelSpec(input_size=size, dynamic=dynamic)
    return trt_export.EngineRequest(tmp_path / "m.onnx", tmp_path / "m.trt", spec, precision=precision, batch=batch)


def test_fixed_model_has_one_shape(tmp_path):
    profile = request(tmp_path, batch=4).profile
    assert profile.min == profile.opt == profile.max == (4, 3, 256, 320)


def test_dynamic_profile_spans_half_to_twice_training_size_in_multiples_of_16(tmp_path):
    profile = request(tmp_path, dynamic=True, batch=8, size=(200 // 16 * 16, 336)).profile
    assert profile.min == (1, 3, 96, 160)  # 168 rounds down
    assert profile.opt == (8, 3, 192, 336)
    assert profile.max == (8, 3, 384, 672)
    assert all(side % 16 == 0 for shape in (profile.min, profile.max) for side in shape[2:])


def test_builder_flags_per_precision():
    assert trt_export.builder_flags("fp32") == []
    assert trt_export.builder_flags("fp16") == ["FP16"]
    assert trt_export.builder_flags("int8") == ["INT8", "FP16"]  # INT8 from Q/DQ; FP16 for the rest


def test_unknown_precision_is_refused(tmp_path):
    with pytest.raises(SegedgeError, match="bf16"):
        request(tmp_path, precision="bf16")


def test_trtexec_command_for_static_model_takes_shapes_from_the_file(tmp_path):
    command = trt_export.trtexec_command(request(tmp_path, precision="int8"))
    assert command[:3] == ["trtexec", f"--onnx={tmp_path / 'm.onnx'}", f"--saveEngine={tmp_path / 'm.trt'}"]
    assert f"--timingCacheFile={tmp_path / 'tensorrt.timing.cache'}" in command
    assert "--memPoolSize=workspace:4096M" in command
    assert "--int8" in command and "--fp16" in command
    assert not any(arg.startswith(("--minShapes", "--optShapes", "--maxShapes")) for arg in command)


def test_trtexec_command_for_dynamic_model_has_the_profile(tmp_path):
    command = trt_export.trtexec_command(request(tmp_path, dynamic=True, batch=2, size=(256, 256)))
    assert "--minShapes=image:1x3x128x128" in command
    assert "--optShapes=image:2x3x256x256" in command
    assert "--maxShapes=image:2x3x512x512" in command
    assert "--int8" not in command and "--fp16" in command


def test_trtexec_version_is_parsed_from_its_log():
    assert trt_export.parse_trtexec_version("&&&& RUNNING TensorRT.trtexec [TensorRT v100300] # trtexec") == "10.3.0"
    assert trt_export.parse_trtexec_version("no version here") is None


def test_sidecar_info_holds_what_a_runtime_must_check(tmp_path):
    req = request(tmp_path, dynamic=True, batch=2, size=(256, 256))
    info = trt_export.sidecar_info(req, "10.3.0", "api", {"gpu": "NVIDIA H100", "compute_capability": "9.0"})
    assert info["tensorrt_version"] == "10.3.0" and info["gpu"] == "NVIDIA H100"
    assert info["compute_capability"] == "9.0" and info["precision"] == "fp16"
    assert info["shapes"] == {"min": [1, 3, 128, 128], "opt": [2, 3, 256, 256], "max": [2, 3, 512, 512]}


@pytest.mark.skipif(HAS_TENSORRT or HAS_TRTEXEC, reason="TensorRT is installed here")
def test_without_tensorrt_the_builder_choice_is_one_actionable_line(tmp_path):
    with pytest.raises(SegedgeError, match=r"m\.trt: TensorRT is not installed: pip install 'segedge\[trt\]'"):
        trt_export.choose_builder(tmp_path / "m.trt")


@pytest.mark.skipif(HAS_TENSORRT or HAS_TRTEXEC, reason="TensorRT is installed here")
def test_cli_trt_writes_the_onnx_then_says_what_is_missing(tiny_checkpoint, tmp_path):
    checkpoint = tmp_path / "tiny.pth"
    checkpoint.write_bytes(tiny_checkpoint.read_bytes())
    result = segedge_in_process("export", checkpoint, "--format", "trt")  # the export's one-line error, no new torch
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [
        f"segedge: error: cannot build {tmp_path / 'tiny.trt'}: {trt_export.INSTALL_HINT}"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.onnx", "tiny.pth"]


def test_trtexec_fallback_builds_engine_and_sidecar(tiny_onnx, tmp_path, monkeypatch):
    """A stand-in trtexec (TensorRT cannot run here) checks our side: the command is run, the engine lands
    atomically, the version is read from the log and the sidecar is written next to the engine."""
    sidecar = pytest.importorskip("segedge.model_files")
    if HAS_TENSORRT:
        pytest.skip("TensorRT Python API present: the trtexec fallback is not used")
    fake = tmp_path / "bin" / "trtexec"
    fake.parent.mkdir()
    fake.write_text('#!/bin/sh\necho "&&&& RUNNING TensorRT.trtexec [TensorRT v100300]"\n'
                    'for a in "$@"; do case "$a" in --saveEngine=*) echo engine > "${a#--saveEngine=}";; esac; done\n')
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}{os.pathsep}{os.environ['PATH']}")
    from segedge.model_files import read_spec

    req = trt_export.EngineRequest(tiny_onnx, tmp_path / "m.trt", read_spec(tiny_onnx), precision="fp16")
    engine, info = trt_export.build_engine(req)
    assert engine.read_text() == "engine\n" and info["tensorrt_version"] == "10.3.0"
    spec, stored = sidecar.read_sidecar(engine)
    assert spec.precision == "fp16" and stored["shapes"] == info["shapes"]


@pytest.mark.tensorrt
@pytest.mark.skipif(not HAS_TENSORRT, reason="needs the TensorRT Python package and an NVIDIA GPU (not installable "
                                              "on this machine)")
def test_real_engine_build(tiny_onnx, tmp_path):
    from segedge.model_files import read_spec

    req = trt_export.EngineRequest(tiny_onnx, tmp_path / "m.trt", read_spec(tiny_onnx), precision="fp16")
    engine, info = trt_export.build_engine(req)
    assert engine.stat().st_size > 0 and (tmp_path / "tensorrt.timing.cache").is_file()
    assert info["builder"] == "api"
