"""How to make an embedded model INT8 on this CPU: each variant's mask agreement with FP32 and its latency.

Variants: full-range int8 weights on onnxruntime's fast u8s8 kernels (which saturate on x86 without VNNI), the same
file with the session's exact u8u8 kernels (`session.x64quantprecision`), 7-bit weights (reduce_range) on every layer,
7-bit weights with the backbone layers up to the decoder's tap in FP32 (stride <= 4 for default, <= 8 for the cut
trunk of fast), `segedge export`'s choice (those and the output layers in
FP32), and the shipped file (that export after quantisation-aware fine-tuning, training/qat.py). Agreement is the
mean per-image mask IoU against the FP32 file over every image of each val folder; latency is batch 1, 2 threads, the
variants taking turns in blocks of 10 calls. Writes benchmarks/results/int8_cpu_<cpu>.json (default) or
int8_<model>_<cpu>.json.

    .venv/bin/python benchmarks/int8_variants.py [--model fast] [--rounds 12]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from segedge.export.images import CALIB_IMAGES, image_files, sample
from segedge.export.precision import FP32_NODE_PREFIXES, OUTPUT_LAYERS, to_int8

from segedge.backends import resolve_model
from segedge.backends.onnxruntime import open_session, spec_from_session
from segedge.bench import machine_info
from segedge.cpu import cpu_slug
from segedge.media import read_image
from segedge.metrics import mask_metrics
from segedge.model_files import read_spec
from segedge.preprocess import to_model_input
from segedge.spec import ModelSpec

PEOPLE = Path(__file__).resolve().parents[2] / "shared" / "data" / "people"
RESULTS = Path(__file__).resolve().parent / "results"
FOLDERS = ("val", "val-portraits", "val-scenes")


def make_variants(model: Path, work: Path) -> dict[str, tuple[Path, bool]]:
    """name -> (ONNX file, exact u8u8 kernels)."""
    calib = sample(image_files(PEOPLE / "train"), CALIB_IMAGES)
    kept = FP32_NODE_PREFIXES[read_spec(model).backbone]
    high_resolution = tuple(prefix for prefix in kept if prefix not in OUTPUT_LAYERS)
    full = to_int8(model, work / "full.onnx", calib, reduce_range=False, fp32_prefixes=()).path
    seven_bit = to_int8(model, work / "rr.onnx", calib, fp32_prefixes=()).path
    tap = to_int8(model, work / "tap.onnx", calib, fp32_prefixes=high_resolution).path
    exported = to_int8(model, work / "export.onnx", calib).path
    variants = {"fp32": (model, False), "int8 full-range, u8s8": (full, False),
                "int8 full-range, exact u8u8": (full, True), "int8 7-bit, all layers": (seven_bit, False),
                "int8 7-bit, backbone to the decoder's tap FP32": (tap, False),
                "int8 7-bit, that and output FP32 (export)": (exported, False)}
    shipped = model.with_name(model.name.replace(".onnx", ".int8.onnx"))
    if shipped.is_file():
        variants["shipped: export + quantisation-aware fine-tune"] = (shipped, False)
    return variants


def agreement(sessions: dict, spec: ModelSpec) -> dict[str, dict[str, float]]:
    name = sessions["fp32"].get_inputs()[0].name
    scores = {variant: {} for variant in sessions if variant != "fp32"}
    for folder in FOLDERS:
        ious = {variant: [] for variant in scores}
        for path in image_files(PEOPLE / folder):
            x = to_model_input(read_image(path), spec)
            reference = sessions["fp32"].run(None, {name: x})[0][0, 0] > 0
            for variant in ious:
                mask = sessions[variant].run(None, {name: x})[0][0, 0] > 0
                ious[variant].append(mask_metrics(mask, reference)["iou"])
        for variant, values in ious.items():
            scores[variant][folder] = round(float(np.mean(values)), 4)
    return scores


def latency(sessions: dict, spec: ModelSpec, rounds: int) -> dict[str, float]:
    name = sessions["fp32"].get_inputs()[0].name
    x = np.random.default_rng(0).standard_normal((1, 3, *spec.input_size), dtype=np.float32)
    times = {variant: [] for variant in sessions}
    for _ in range(rounds):
        for variant, session in sessions.items():
            time.sleep(0.05)  # let the previous variant's spinning threads sleep
            for call in range(11):
                start = time.perf_counter()
                session.run(None, {name: x})
                if call:  # the first call of a turn warms caches
                    times[variant].append(time.perf_counter() - start)
    return {variant: round(statistics.median(t) * 1000, 2) for variant, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default", help="embedded model name or FP32 ONNX file")
    parser.add_argument("--rounds", type=int, default=12)
    args = parser.parse_args()
    model = resolve_model(args.model)
    with tempfile.TemporaryDirectory() as work:
        variants = make_variants(model, Path(work))
        sessions = {v: open_session(path, "cpu", 2, exact_int8=exact) for v, (path, exact) in variants.items()}
        spec = spec_from_session(sessions["fp32"], model)
        scores = agreement(sessions, spec)
        p50 = latency(sessions, spec, args.rounds)
    machine = machine_info()
    rows = [{"variant": v, "p50_ms": p50[v], "speedup_vs_fp32": round(p50["fp32"] / p50[v], 2),
             "mask_iou_vs_fp32": scores.get(v)} for v in variants]
    for row in rows:
        print(f"{row['variant']:40s} {row['p50_ms']:7.2f} ms  {row['speedup_vs_fp32']:.2f}x  {row['mask_iou_vs_fp32']}")
    slug = cpu_slug()
    out = RESULTS / (f"int8_cpu_{slug}.json" if model.name == "default.onnx" else f"int8_{model.stem}_{slug}.json")
    load = Path("/proc/loadavg").read_text().split()[:3]  # a shared machine: how busy it was
    out.write_text(json.dumps({"machine": machine, "model": model.name, "rows": rows, "rounds": args.rounds,
                               "loadavg_after": load}, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
