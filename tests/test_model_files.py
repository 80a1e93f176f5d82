"""One module for model files: the format table, artefact names, and the spec read from every kind of file."""

import pytest

from segedge.errors import SegedgeError
from segedge.model_files import (
    FORMATS,
    default_path,
    embed_spec,
    embedded_spec,
    model_format,
    onnx_path_for,
    onnx_precision,
    read_spec,
    write_sidecar,
)
from segedge.spec import ModelSpec


@pytest.mark.parametrize("name, backend", [("m.onnx", "onnxruntime"), ("m.int8.onnx", "onnxruntime"),
                                           ("m.TRT", "tensorrt"), ("m.engine", "tensorrt"), ("m.plan", "tensorrt"),
                                           ("m.pth", "torch"), ("m.pt", "torch")])
def test_format_comes_from_the_extension(name, backend):
    assert model_format(name).backend == backend


def test_unknown_extension_names_every_known_one():
    with pytest.raises(SegedgeError, match=r"unknown model type \.tflite; expected \.pth, \.pt, \.onnx, \.trt"):
        model_format("m.tflite")


def test_every_format_has_one_export_suffix_and_a_place_for_its_spec():
    assert [f.suffixes[0] for f in FORMATS] == [".pth", ".onnx", ".trt"]
    assert all(f.spec_in and f.extra for f in FORMATS)


def test_artefact_names():
    assert onnx_path_for("run/best.onnx", "fp16").name == "best.fp16.onnx"
    assert onnx_path_for("run/best.trt", "int8").name == "best.int8.onnx"
    assert onnx_path_for("run/best.trt", "fp32").name == "best.onnx"
    assert default_path("run/best.pth", "tensorrt").name == "best.trt"
    assert [onnx_precision(n) for n in ("m.onnx", "m.fp16.onnx", "m.INT8.onnx")] == ["fp32", "fp16", "int8"]


def test_spec_read_from_onnx_and_sidecar(tiny_onnx, tmp_path):
    spec = read_spec(tiny_onnx)
    assert spec.input_size == (64, 64) and spec.precision == "fp32"
    engine = tmp_path / "m.engine"
    engine.write_bytes(b"engine")
    write_sidecar(engine, ModelSpec(precision="fp16"), {})
    assert read_spec(engine).precision == "fp16"


def test_spec_read_from_a_checkpoint(tiny_checkpoint):
    assert read_spec(tiny_checkpoint).input_size == (64, 64)


def test_spec_embedded_round_trip_replaces_older_values():
    onnx = pytest.importorskip("onnx")
    model = onnx.ModelProto()
    embed_spec(model, ModelSpec(precision="fp32"))
    embed_spec(model, ModelSpec(precision="int8"))
    assert embedded_spec(model).precision == "int8"
    assert [p.key for p in model.metadata_props].count("segedge.spec") == 1


def test_missing_or_specless_files_are_one_line_errors(tmp_path):
    with pytest.raises(SegedgeError, match="model file not found"):
        read_spec(tmp_path / "absent.onnx")
    onnx = pytest.importorskip("onnx")
    bare = tmp_path / "bare.onnx"
    onnx.save(onnx.ModelProto(), str(bare))
    with pytest.raises(SegedgeError, match="bare.onnx has no segedge model spec"):
        read_spec(bare)


def test_dynamic_sides_follow_the_spec():
    spec = ModelSpec(input_size=(336, 336), dynamic=True)
    assert spec.dynamic_sides(336) == (176, 672)  # within 0.5x..2x, in multiples of 16
    assert spec.dynamic_sides(336, outward=True) == (160, 672)  # a TensorRT profile covers at least that
    assert ModelSpec.fits_size(320) and not ModelSpec.fits_size(330) and not ModelSpec.fits_size(0)
