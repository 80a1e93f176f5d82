"""Inference on a shared CPU (issue #20, section 2): threads x spinning, on an idle CPU and beside a busy process.

A video call runs beside the call app, a browser and the OS. onnxruntime's intra-op thread pool spin-waits between
tasks by default, which wins on an idle CPU and can lose badly when another process wants the same cores. For each
model (default FP32, default INT8, fast FP32), 1 and 2 intra-op threads, spinning on and off: batch-1 latency p50 and
p90 in two conditions, idle and beside a synthetic load keeping one core busy (a child process spinning in pure
Python, started and stopped here and ending on its own after --seconds at the latest). Within a condition every
session takes turns in blocks of calls (segedge.bench.time_in_turns), so drift hits them alike.
Writes benchmarks/results/shared_cpu_<cpu>.json and .md.

    .venv/bin/python benchmarks/shared_cpu.py [--runs 200]
"""

from __future__ import annotations

import argparse
import itertools
import subprocess
import sys

import numpy as np
from recording import load_average, result_path, write_result

from segedge.backends import resolve_model
from segedge.backends.onnxruntime import open_session
from segedge.bench import machine_info, time_in_turns

MODELS = ("default", "default-int8", "fast")
BUSY_LOOP = "import time\nend = time.monotonic() + {seconds}\nwhile time.monotonic() < end:\n    pass\n"


def sessions() -> dict[tuple[str, int, bool], object]:
    """A call for every (model, threads, spinning), each on its own session and random input."""
    calls = {}
    for model, threads, spinning in itertools.product(MODELS, (1, 2), (True, False)):
        session = open_session(resolve_model(model), "cpu", threads, spinning=spinning)
        shape = [d if isinstance(d, int) else 1 for d in session.get_inputs()[0].shape]
        x = {session.get_inputs()[0].name: np.random.default_rng(0).standard_normal(shape, dtype=np.float32)}
        for _ in range(3):
            session.run(None, x)
        calls[(model, threads, spinning)] = (lambda s=session, feed=x: s.run(None, feed))
    return calls


def measure(calls: dict, runs: int) -> dict:
    times, errors = time_in_turns({"|".join(map(str, key)): call for key, call in calls.items()}, runs)
    if errors:
        raise next(iter(errors.values()))
    return {key: [round(float(np.percentile(values, q)), 2) for q in (50, 90)] for key, values in times.items()}


def measure_beside_busy_core(calls: dict, runs: int, seconds: float) -> dict:
    busy = subprocess.Popen([sys.executable, "-c", BUSY_LOOP.format(seconds=seconds)])
    try:
        return measure(calls, runs)
    finally:
        busy.kill()
        busy.wait()


def markdown(result: dict) -> str:
    machine = result["machine"]
    lines = ["# Inference on a shared CPU: threads x spinning, idle and beside one busy core", "",
             f"CPU: {machine['cpu']} ({machine['cores']} cores; {', '.join(machine['isa']) or 'no AVX2'}), "
             f"onnxruntime {machine.get('onnxruntime')}, batch 1, {result['runs']} calls per session and condition, "
             f"sessions taking turns; load average before {result['loadavg_before']}, after "
             f"{result['loadavg_after']}. `benchmarks/shared_cpu.py` -> `{result['file']}`.", "",
             "| model | threads | spinning | idle p50 / p90 ms | one core busy p50 / p90 ms |", "|---|---|---|---|---|"]
    for key in result["idle"]:
        model, threads, spinning = key.split("|")
        idle, busy = result["idle"][key], result["busy"][key]
        lines.append(f"| {model} | {threads} | {'on' if spinning == 'True' else 'off'} | {idle[0]:.2f} / {idle[1]:.2f}"
                     f" | {busy[0]:.2f} / {busy[1]:.2f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200, help="timed calls per session and condition")
    parser.add_argument("--seconds", type=float, default=600, help="the busy process ends itself after this long")
    args = parser.parse_args()
    calls = sessions()
    before = load_average()
    idle = measure(calls, args.runs)
    busy = measure_beside_busy_core(calls, args.runs, args.seconds)
    out = result_path("shared_cpu")
    result = {"machine": machine_info(), "runs": args.runs, "loadavg_before": before, "loadavg_after": load_average(),
              "file": out.name, "idle": idle, "busy": busy}
    write_result(out, result, markdown)


if __name__ == "__main__":
    main()
