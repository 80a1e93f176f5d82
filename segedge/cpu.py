"""What CPU this is: model name and the instruction sets that change onnxruntime's results and speed.

INT8 numbers differ between x86 CPUs with and without VNNI (onnxruntime's u8s8 kernels saturate 16-bit sums
without it), so every benchmark records these flags and the runtime picks INT8 settings from them.
"""

from __future__ import annotations

import functools
import logging
import os
import platform
import re
from pathlib import Path

from segedge.errors import SegedgeError

log = logging.getLogger("segedge")

ISA_FLAGS = {  # /proc/cpuinfo flag -> name reported
    "avx2": "AVX2",
    "avx512f": "AVX-512",
    "avx512_vnni": "AVX-512 VNNI",
    "avx_vnni": "AVX-VNNI",
    "amx_int8": "AMX-INT8",
    "asimddp": "ARM dot product",
}
WIDE_INT8_FLAGS = frozenset({"avx512_vnni", "avx_vnni", "amx_int8"})  # int8 dot products summed in 32 bits


@functools.cache
def _cpuinfo() -> tuple[str, frozenset[str]]:
    """(model name, flags) from /proc/cpuinfo; (platform.processor(), {}) where it does not exist."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return platform.processor() or platform.machine(), frozenset()
    fields = {}
    for line in lines:
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())  # the first core speaks for all
    flags = fields.get("flags") or fields.get("Features") or ""  # x86 / ARM
    return fields.get("model name") or platform.processor() or platform.machine(), frozenset(flags.split())


def cpu_model() -> str:
    return _cpuinfo()[0]


def isa_flags() -> list[str]:
    """The instruction sets from ISA_FLAGS this CPU has, e.g. ['AVX2', 'AVX-512', 'AVX-512 VNNI']."""
    flags = _cpuinfo()[1]
    return [name for flag, name in ISA_FLAGS.items() if flag in flags]


def cpu_slug() -> str:
    """CPU model and ISA flags as a file-name part, e.g. 'amd-epyc-7b13-64-core-processor-avx2'."""
    return re.sub(r"[^a-z0-9]+", "-", f"{cpu_model()} {'-'.join(isa_flags())}".lower()).strip("-")


def int8_saturates() -> bool:
    """True on x86 without VNNI/AMX, where onnxruntime's u8s8 kernels sum pairs of products in 16 bits and saturate
    unless the weights use 7 bits (reduce_range) or the session asks for the exact u8u8 kernels."""
    if platform.machine().lower() not in ("x86_64", "amd64", "i386", "i686"):
        return False
    return not WIDE_INT8_FLAGS & _cpuinfo()[1]


def bounded_threads(threads: int | None) -> int | None:
    """--threads checked against this machine: at least 1, at most its cores (more threads only fight over them)."""
    cores = os.cpu_count() or 1
    if threads is None:
        return None
    if threads < 1:
        raise SegedgeError(f"--threads {threads}: give at least 1 (this machine has {cores} cores)")
    if threads > cores:
        log.warning("WARNING: --threads %d is more than the %d cores here; using %d", threads, cores, cores)
        return cores
    return threads
