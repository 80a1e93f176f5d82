"""The shipped models against MediaPipe selfie segmentation in one alternating run (issue #20's latency target).

Every embedded ONNX model (default, default-int8, fast, fast-int8, ...) and MediaPipe selfie segmentation (256x256
.tflite in ai-edge-litert, in its own environment as a worker process) take turns in blocks of 11 calls (the first
discarded), batch 1, the same thread count, so drift on this shared machine hits all of them alike: rely on the
ratios within one run. Each row also has the model's MACs and parameters
(recorded in its spec at export). The load average before and after goes into the result, with the CPU model
and ISA flags. Writes benchmarks/results/fast_vs_mediapipe_<cpu>.json and .md.

    .venv/bin/python benchmarks/fast_vs_mediapipe.py --mediapipe-python /tmp/mpvenv/bin/python \
        --mediapipe-wheel /tmp/mpwheel/mediapipe-0.10.21-*.whl [--rounds 20] [--threads 2]

(the MediaPipe environment as at the top of benchmarks/mediapipe_compare.py.)
"""

from __future__ import annotations

import argparse
from pathlib import Path

from fast_candidates import MEDIAPIPE_GMAC, MediaPipeContender, OnnxContender, alternate
from recording import load_average, result_path, write_result

from segedge.backends import embedded_names, resolve_model
from segedge.bench import machine_info
from segedge.model_files import read_spec

MEDIAPIPE = "MediaPipe selfie (tflite, 256)"


def cost(path: Path) -> dict:
    """GMAC and parameters recorded in the model's spec when it was exported (None for files without them)."""
    recorded = read_spec(path).cost
    return {"gmac": recorded.get("gmac"), "params_m": recorded.get("params_m")}


def markdown(result: dict) -> str:
    machine = result["machine"]
    lines = ["# Embedded models vs MediaPipe selfie segmentation, one alternating run",
             "",
             f"CPU: {machine['cpu']} ({machine['cores']} cores; {', '.join(machine['isa']) or 'no AVX2'}), "
             f"onnxruntime {machine.get('onnxruntime')}, batch 1, {result['threads']} threads, {result['rounds']} "
             f"rounds of 10 timed calls each; load average before {result['loadavg_before']}, after "
             f"{result['loadavg_after']}. `benchmarks/fast_vs_mediapipe.py` -> `{result['file']}`.",
             "",
             "| model | input | GMAC | params (M) | file MB | p50 ms | x MediaPipe (p50) | p10 ms | x MP (p10) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for row in result["rows"]:
        gmac = "-" if row["gmac"] is None else f"{row['gmac']:.3f}"
        params = "-" if row["params_m"] is None else f"{row['params_m']:.2f}"
        size = "-" if row["file_mb"] is None else f"{row['file_mb']:.1f}"
        lines.append(f"| {row['model']} | {row['input']} | {gmac} | {params} | {size} | {row['p50_ms']:.2f} | "
                     f"{row['x_mediapipe_p50']:.2f} | {row['p10_ms']:.2f} | {row['x_mediapipe_p10']:.2f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--mediapipe-python", required=True, help="python of an environment with ai-edge-litert")
    parser.add_argument("--mediapipe-wheel", type=Path, required=True, help="mediapipe-0.10.21 wheel")
    parser.add_argument("--onnx", nargs="*", type=Path, default=[], help="more ONNX files to time (not shipped)")
    args = parser.parse_args()
    rows = {}
    for name, path in [(n, resolve_model(n)) for n in embedded_names()] + [(p.name, p) for p in args.onnx]:
        contender = OnnxContender(path, args.threads)
        rows[name] = {"model": name, "file": path.name, "input": "x".join(map(str, contender.x.shape[2:])),
                      "file_mb": round(path.stat().st_size / 1e6, 2), **cost(path), "contender": contender}
    mediapipe = MediaPipeContender(args.mediapipe_python, args.mediapipe_wheel, args.threads)
    rows[MEDIAPIPE] = {"model": MEDIAPIPE, "file": args.mediapipe_wheel.name, "input": "256x256",
                       "file_mb": None, "gmac": MEDIAPIPE_GMAC, "params_m": None, "contender": mediapipe}
    before = load_average()
    try:
        times = alternate({name: row.pop("contender") for name, row in rows.items()}, args.rounds)
    finally:
        mediapipe.close()
    after = load_average()
    for name, row in rows.items():
        row["p50_ms"], row["p10_ms"] = times[name]
        row["x_mediapipe_p50"] = round(times[name][0] / times[MEDIAPIPE][0], 2)
        row["x_mediapipe_p10"] = round(times[name][1] / times[MEDIAPIPE][1], 2)
    out = result_path("fast_vs_mediapipe")
    result = {"machine": machine_info(), "threads": args.threads, "rounds": args.rounds, "loadavg_before": before,
              "loadavg_after": after, "file": out.name, "rows": list(rows.values())}
    write_result(out, result, markdown)


if __name__ == "__main__":
    main()
