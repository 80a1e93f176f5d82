"""Candidates for the embedded `fast` model (issue #20): MACs, parameters and onnxruntime latency BEFORE training.

Each candidate is built from segedge's own model code (untrained weights: cost does not depend on them), its MACs
counted with forward hooks on every conv (multiply-accumulates of the conv itself; BN folds into it at export,
activations and resizes are not counted), exported to ONNX with `segedge export`'s code path (onnxslim, BN folded)
and timed with onnxruntime at batch 1, 2 threads. The shipped default.onnx and, when a MediaPipe environment is
given, MediaPipe selfie segmentation (256x256 .tflite in ai-edge-litert, run in that environment as a worker
process) take turns with the candidates in one run: every contender runs blocks of 11 calls (the first discarded)
in each round, so machine drift hits all of them alike. Writes benchmarks/results/fast_candidates_<cpu>.json.

    .venv/bin/python benchmarks/fast_candidates.py [--rounds 10] \
        [--mediapipe-python /tmp/mpvenv/bin/python --mediapipe-wheel /tmp/mpwheel/mediapipe-0.10.21-*.whl]

(the MediaPipe environment as at the top of benchmarks/mediapipe_compare.py: ai-edge-litert and numpy.)
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from segedge.export.onnx import export_model
from segedge.training.model import build_model, model_cost

from segedge.backends import DEFAULT_MODEL
from segedge.backends.onnxruntime import open_session
from segedge.bench import machine_info
from segedge.cpu import cpu_slug
from segedge.spec import ModelSpec

RESULTS = Path(__file__).resolve().parent / "results"
MEDIAPIPE_GMAC = 0.06  # issue #20's figure for the selfie model at 256x256

SLIM = dict(head="deeplabv3plus", aspp_rates=(), decoder_convs=1, separable=True)
CANDIDATES: dict[str, dict] = {  # name -> ModelSpec fields
    "default arch @320": dict(backbone="mobilenet_v2", head_channels=128, separable=True, input_size=(320, 320)),
    "default arch @256": dict(backbone="mobilenet_v2", head_channels=128, separable=True, input_size=(256, 256)),
    "mnv2 OS16 + LR-ASPP 128 @224": dict(backbone="mobilenet_v2", head="lraspp", head_channels=128,
                                         input_size=(224, 224)),
    "mnv2-s16 + DLv3+ (6,12,18)/2conv 96 @256": dict(backbone="mobilenet_v2_s16", head_channels=96, separable=True,
                                                      aspp_rates=(6, 12, 18), low_level_channels=24,
                                                      input_size=(256, 256)),
    "mnv2-s16 + slim DLv3+ 64 @256": dict(backbone="mobilenet_v2_s16", head_channels=64, low_level_channels=16,
                                          input_size=(256, 256), **SLIM),
    "mnv2-s16 + slim DLv3+ (3) 64 @256": dict(backbone="mobilenet_v2_s16", head_channels=64, low_level_channels=16,
                                              input_size=(256, 256), **{**SLIM, "aspp_rates": (3,)}),
    "mnv2-s16 + slim DLv3+ 64 @224": dict(backbone="mobilenet_v2_s16", head_channels=64, low_level_channels=16,
                                          input_size=(224, 224), **SLIM),
    "mnv2-s16 + slim DLv3+ 64 @192": dict(backbone="mobilenet_v2_s16", head_channels=64, low_level_channels=16,
                                          input_size=(192, 192), **SLIM),
    "mnv2-s16 + slim DLv3+ 64 @256x144": dict(backbone="mobilenet_v2_s16", head_channels=64, low_level_channels=16,
                                              input_size=(256, 144), **SLIM),
    "mnv2-s16 + DLv3+ (3)/2conv 96 @224": dict(backbone="mobilenet_v2_s16", head_channels=96, low_level_channels=24,
                                               input_size=(224, 224), **{**SLIM, "aspp_rates": (3,),
                                                                         "decoder_convs": 2}),
    "mnv2-s16 + DLv3+ (3)/2conv 96 @256": dict(backbone="mobilenet_v2_s16", head_channels=96, low_level_channels=24,
                                               input_size=(256, 256), **{**SLIM, "aspp_rates": (3,),
                                                                         "decoder_convs": 2}),
    "mnv2-s16 + LR-ASPP 128 @256": dict(backbone="mobilenet_v2_s16", head="lraspp", head_channels=128,
                                        input_size=(256, 256)),
    "mnv2-s16 + LR-ASPP 128 @224": dict(backbone="mobilenet_v2_s16", head="lraspp", head_channels=128,
                                        input_size=(224, 224)),
}

MEDIAPIPE_WORKER = r"""
import json, sys, time, zipfile
import numpy as np
from ai_edge_litert.interpreter import Interpreter
content = zipfile.ZipFile(sys.argv[1]).read("mediapipe/modules/selfie_segmentation/selfie_segmentation.tflite")
interpreter = Interpreter(model_content=content, num_threads=int(sys.argv[2]))
interpreter.allocate_tensors()
inp = interpreter.get_input_details()[0]
x = np.random.default_rng(0).random(inp["shape"], dtype=np.float32)
print(json.dumps({"input": [int(v) for v in inp["shape"]]}), flush=True)
for line in sys.stdin:
    times = []
    for _ in range(int(line)):
        start = time.perf_counter()
        interpreter.set_tensor(inp["index"], x)
        interpreter.invoke()
        times.append(time.perf_counter() - start)
    print(json.dumps(times), flush=True)
"""


class OnnxContender:
    def __init__(self, path: Path, threads: int):
        self.session = open_session(path, "cpu", threads)
        inp = self.session.get_inputs()[0]
        self.name = inp.name
        self.x = np.random.default_rng(0).standard_normal([d if isinstance(d, int) else 1 for d in inp.shape],
                                                          dtype=np.float32)

    def calls(self, count: int) -> list[float]:
        times = []
        for _ in range(count):
            start = time.perf_counter()
            self.session.run(None, {self.name: self.x})
            times.append(time.perf_counter() - start)
        return times


class MediaPipeContender:
    def __init__(self, python: str, wheel: Path, threads: int):
        self.proc = subprocess.Popen([python, "-c", MEDIAPIPE_WORKER, str(wheel), str(threads)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.input = json.loads(self.proc.stdout.readline())["input"]

    def calls(self, count: int) -> list[float]:
        self.proc.stdin.write(f"{count}\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=10)


def alternate(contenders: dict, rounds: int) -> dict[str, tuple[float, float]]:
    """name -> (median ms, 10th-percentile ms); on a shared CPU the low percentile is the less disturbed figure."""
    times = {name: [] for name in contenders}
    for _ in range(rounds):
        for name, contender in contenders.items():
            time.sleep(0.05)  # let the previous contender's spinning threads sleep
            times[name] += contender.calls(11)[1:]  # the first call of a turn warms caches
    return {name: (round(statistics.median(t) * 1000, 2), round(float(np.percentile(t, 10)) * 1000, 2))
            for name, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--only", nargs="*", help="candidate names to keep (default: all)")
    parser.add_argument("--mediapipe-python", help="python of an environment with ai-edge-litert")
    parser.add_argument("--mediapipe-wheel", type=Path, help="mediapipe-0.10.21 wheel holding the selfie .tflite")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows, contenders = {}, {}
    with tempfile.TemporaryDirectory(prefix="segedge-fast-") as work:
        for index, (name, fields) in enumerate(CANDIDATES.items()):
            if args.only and name not in args.only:
                continue
            spec = ModelSpec(**fields)
            model = build_model(spec).eval()
            rows[name] = {"candidate": name, "spec": {k: v for k, v in fields.items()},
                          **model_cost(model, spec.input_size)}
            path = export_model(model, spec, Path(work) / f"c{index}.onnx")
            contenders[name] = OnnxContender(path, args.threads)
            print(f"{name:45s} {rows[name]['gmac']:.3f} GMAC {rows[name]['params_m']:.2f} M params", flush=True)
        contenders["default.onnx (shipped, 320)"] = OnnxContender(DEFAULT_MODEL, args.threads)
        rows["default.onnx (shipped, 320)"] = {"candidate": "default.onnx (shipped, 320)", "gmac": None,
                                                "params_m": None}
        mediapipe = None
        if args.mediapipe_python and args.mediapipe_wheel:
            mediapipe = MediaPipeContender(args.mediapipe_python, args.mediapipe_wheel, args.threads)
            contenders["MediaPipe selfie (tflite, 256)"] = mediapipe
            rows["MediaPipe selfie (tflite, 256)"] = {"candidate": "MediaPipe selfie (tflite, 256)",
                                                       "gmac": MEDIAPIPE_GMAC, "params_m": None}
        p50 = alternate(contenders, args.rounds)
        if mediapipe is not None:
            mediapipe.close()
    reference = "MediaPipe selfie (tflite, 256)" if mediapipe is not None else "default.onnx (shipped, 320)"
    versus = f"x_{'mediapipe' if mediapipe is not None else 'default'}"
    for name, row in rows.items():
        row["p50_ms"], row["p10_ms"] = p50[name]
        row[f"{versus}_p50"] = round(p50[name][0] / p50[reference][0], 2)
        row[f"{versus}_p10"] = round(p50[name][1] / p50[reference][1], 2)
    machine = machine_info()
    print(f"{'candidate':45s} {'GMAC':>6s} {'Mparam':>6s} {'p50 ms':>7s} {'x':>6s} {'p10 ms':>7s} {'x':>6s}")
    for row in rows.values():
        gmac = f"{row['gmac']:.3f}" if row["gmac"] is not None else "-"
        params = f"{row['params_m']:.2f}" if row["params_m"] is not None else "-"
        print(f"{row['candidate']:45s} {gmac:>6s} {params:>6s} {row['p50_ms']:7.2f} {row[versus + '_p50']:5.2f}x "
              f"{row['p10_ms']:7.2f} {row[versus + '_p10']:5.2f}x")
    slug = cpu_slug()
    out = RESULTS / f"fast_candidates_{slug}.json"
    load = Path("/proc/loadavg").read_text().split()[:3] if Path("/proc/loadavg").exists() else None
    out.write_text(json.dumps({"machine": machine, "threads": args.threads, "rounds": args.rounds,
                               "loadavg_after": load,
                               "reference": reference, "rows": list(rows.values())}, indent=2) + "\n")
    print(f"wrote {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
