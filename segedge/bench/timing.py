"""Honest timing: backends take turns on the same input, peak host memory per backend, and the machine it ran on."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from segedge.cpu import cpu_model, int8_saturates, isa_flags

TURN_RUNS = 10  # timed calls per backend per turn (see time_in_turns)
TURN_PAUSE_S = 0.05  # idle gap before each turn: the previous backend's spinning worker threads go to sleep


def machine_info() -> dict:
    info = {"platform": platform.platform(), "python": platform.python_version(), "cores": os.cpu_count(),
            "cpu": cpu_model(), "isa": isa_flags(), "int8_kernels": "u8u8 or 7-bit weights (no VNNI)"
            if int8_saturates() else "u8s8"}
    for module in ("onnxruntime", "tensorrt"):
        try:
            info[module] = __import__(module).__version__
        except ImportError:
            pass
    try:
        info["torch"] = importlib.metadata.version("torch")  # from its metadata: machine info must not import torch
    except importlib.metadata.PackageNotFoundError:
        pass
    torch = sys.modules.get("torch")  # only when already loaded: machine info must not import torch
    if torch is not None and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
        info["cuda"] = torch.version.cuda
    return info


def _status_mb(key: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1]) / 1024  # the kernel reports kB
    raise OSError(f"{key} not in /proc/self/status")


class PeakMemory:
    """Peak resident memory (host RAM, not GPU memory) a backend adds while loading and running: the kernel's
    high-water mark VmHWM, reset through /proc/self/clear_refs so each backend starts from the current level.
    Where the reset is not allowed it falls back to the plain RSS growth; None where /proc is absent (not Linux)."""

    def __enter__(self) -> PeakMemory:
        try:
            Path("/proc/self/clear_refs").write_text("5")  # "5": reset the peak RSS to the current RSS
            self.key = "VmHWM"
        except OSError:
            self.key = "VmRSS"
        try:
            self.before = _status_mb("VmRSS")
        except OSError:
            self.before = None
        return self

    def __exit__(self, *exc) -> None:
        pass

    def growth_mb(self) -> float | None:
        if self.before is None:
            return None
        return round(max(0.0, _status_mb(self.key) - self.before), 1)


def time_in_turns(calls: dict[str, Callable[[], object]], runs: int) -> tuple[dict[str, np.ndarray], dict]:
    """Milliseconds per call for each named call, `runs` each, the calls taking turns in blocks of TURN_RUNS.

    On shared cloud cores the machine's speed drifts by tens of percent within minutes; timing each backend in
    one stretch would put that drift into the speedups. Taking turns exposes every backend to the same drift. Each
    turn starts after a short pause (thread pools of onnxruntime and OpenMP spin-wait after work; measured here,
    without it INT8 onnxruntime read 5.5 ms instead of 3.4 ms) and with one untimed call, so a backend pays neither
    for the previous one's threads nor for the caches it evicted.
    Returns the times and, for calls that raised, the exception (that call takes no further turns)."""
    times: dict[str, list[float]] = {name: [] for name in calls}
    errors: dict[str, Exception] = {}
    while any(len(times[name]) < runs for name in calls if name not in errors):
        for name, call in calls.items():
            wanted = min(TURN_RUNS, runs - len(times[name]))
            if name in errors or wanted <= 0:
                continue
            try:
                time.sleep(TURN_PAUSE_S)
                call()
                for _ in range(wanted):
                    started = time.perf_counter()
                    call()
                    times[name].append((time.perf_counter() - started) * 1000)
            except Exception as exc:  # noqa: BLE001 -- reported as this backend's failed row
                errors[name] = exc
    return {name: np.array(t) for name, t in times.items() if name not in errors}, errors
