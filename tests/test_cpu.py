"""CPU facts that change INT8 results: flags read from this machine, and the INT8 session settings chosen from them."""

import platform

from segedge.backends.onnxruntime import needs_exact_int8, open_session
from segedge.cpu import ISA_FLAGS, WIDE_INT8_FLAGS, cpu_model, int8_saturates, isa_flags
from segedge.spec import ModelSpec


def test_cpu_model_and_flags_come_from_this_machine():
    assert cpu_model()
    flags = isa_flags()
    if platform.machine() == "x86_64":
        assert "AVX2" in flags  # every CPU onnxruntime's x64 wheels target has it
        assert int8_saturates() == (not {ISA_FLAGS[flag] for flag in WIDE_INT8_FLAGS} & set(flags))


def test_only_full_range_int8_models_need_the_exact_kernels():
    full_range = ModelSpec(precision="int8")
    seven_bit = ModelSpec(precision="int8", quantization={"reduce_range": True})
    assert needs_exact_int8(full_range) == int8_saturates()
    assert not needs_exact_int8(seven_bit) and not needs_exact_int8(ModelSpec(precision="fp32"))


def test_exact_int8_sets_the_onnxruntime_option(tiny_onnx):
    options = open_session(tiny_onnx, "cpu", 1, exact_int8=True).get_session_options()
    assert options.get_session_config_entry("session.x64quantprecision") == "1"


def test_segmenter_threads_sleep_unless_spinning_is_asked_for(tiny_onnx):
    from segedge.runtime import Segmenter

    session = Segmenter(tiny_onnx, "cpu", 1).backend.session  # the default for every use (shared-CPU benchmark)
    assert session.get_session_options().get_session_config_entry("session.intra_op.allow_spinning") == "0"
    options = Segmenter(tiny_onnx, "cpu", 1, spinning=True).backend.session.get_session_options()
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "1"
