"""What one `segedge run photo.jpg` costs from a cold process (issue #20, section 3: target <= 0.4 s on a 2-core CPU).

End to end: `segedge run PHOTO -o OUT --quiet` as a new process, wall time and CPU time (user + sys, less disturbed by
other jobs on a shared machine), for each given segedge executable (e.g. two environments before/after a change)
taking turns. Phases, in a fresh process each round: interpreter start, `import segedge.cli` (typer; a command's
module loads only when it is invoked), typer's parameter coercion (typer >= 0.29 builds pydantic adapters), the
runner's imports (opencv, numpy, onnxruntime), session creation and the first and second inference. With `--mediapipe
PYTHON` (an environment set up as benchmarks/mediapipe_compare.py says) a one-photo MediaPipe selfie-segmentation
script takes the same turns: read the JPEG, run the 256x256 model, blur the background with a bilinear-upsampled mask,
write the JPEG. Writes benchmarks/results/startup_<cpu>.json.

    .venv/bin/python benchmarks/startup.py PHOTO --segedge .venv/bin/segedge [--segedge /other/venv/bin/segedge] \
        [--mediapipe /work/mpvenv/bin/python]
"""

from __future__ import annotations

import argparse
import json
import re
import resource
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from segedge.bench import machine_info

RESULTS = Path(__file__).resolve().parent / "results"

PHASES = r"""
import json, sys, time
t = [time.perf_counter()]
import segedge.cli
t.append(time.perf_counter())
try:
    import typer._adapters  # typer >= 0.29 imports pydantic here when it parses the first option
except ImportError:
    pass
t.append(time.perf_counter())
import segedge.runner, segedge.runtime, onnxruntime
t.append(time.perf_counter())
from segedge.backends import load_backend
backend = load_backend(sys.argv[1], threads=2)
t.append(time.perf_counter())
import numpy as np
x = np.zeros((1, 3, *backend.spec.input_size), np.float32)
backend.infer(x)
t.append(time.perf_counter())
backend.infer(x)
t.append(time.perf_counter())
names = ["import segedge.cli", "typer coercion (pydantic)", "runner + opencv + onnxruntime", "session",
         "first inference", "second inference"]
print(json.dumps({n: round(1000 * (b - a), 1) for n, a, b in zip(names, t, t[1:])}))
"""


# Self-contained rather than reusing mediapipe_compare.py's loader: that module's own imports (its recorder, segedge's
# refinement from this checkout) would be timed as MediaPipe's start-up.
MEDIAPIPE_PHOTO = r"""
import sys, importlib.util
from pathlib import Path
import cv2, numpy as np
from ai_edge_litert.interpreter import Interpreter
package = Path(importlib.util.find_spec("mediapipe").submodule_search_locations[0])
interpreter = Interpreter(model_path=str(package / "modules/selfie_segmentation/selfie_segmentation.tflite"),
                          num_threads=2)
interpreter.allocate_tensors()
inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
bgr = cv2.imread(sys.argv[1])
rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
x = cv2.resize(rgb, (256, 256), interpolation=cv2.INTER_AREA).astype(np.float32)[None] / 255.0
interpreter.set_tensor(inp["index"], x)
interpreter.invoke()
mask = cv2.resize(interpreter.get_tensor(out["index"])[0, ..., 0], bgr.shape[1::-1])[..., None]
blurred = cv2.GaussianBlur(bgr, (0, 0), 10)
cv2.imwrite(sys.argv[2], (bgr * mask + blurred * (1 - mask)).astype(np.uint8))
"""


def timed(command: list[str], cwd: str) -> tuple[float, float]:
    """Wall and CPU (user + sys of the child) seconds of one command."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, cwd=cwd)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def median_ms(values: list[float]) -> float:
    return round(statistics.median(values) * 1000, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("photo", type=Path)
    parser.add_argument("--segedge", action="append", required=True, help="segedge executable (repeatable)")
    parser.add_argument("--engine", default="default")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--mediapipe", help="python of a MediaPipe environment: time its one-photo script too")
    args = parser.parse_args()
    load_before = Path("/proc/loadavg").read_text().split()[:3]
    runs = {exe: {"wall": [], "cpu": [], "python_wall": [], "phases": []} for exe in args.segedge}
    mediapipe = {"wall": [], "cpu": []}
    with tempfile.TemporaryDirectory() as work:
        out = Path(work) / "out.jpg"
        for _ in range(args.rounds):
            for exe, record in runs.items():
                python = str(Path(exe).with_name("python"))
                # cwd: a folder without a segedge checkout, so each environment imports its own installed copy
                wall, cpu = timed([exe, "run", str(args.photo.resolve()), "-o", str(out), "--engine", args.engine,
                                   "--quiet"], work)
                record["wall"].append(wall)
                record["cpu"].append(cpu)
                record["python_wall"].append(timed([python, "-c", "pass"], work)[0])
                phases = subprocess.run([python, "-c", PHASES, args.engine], check=True, capture_output=True,
                                        text=True, cwd=work).stdout
                record["phases"].append(json.loads(phases))
            if args.mediapipe:
                wall, cpu = timed([args.mediapipe, "-c", MEDIAPIPE_PHOTO, str(args.photo.resolve()), str(out)], work)
                mediapipe["wall"].append(wall)
                mediapipe["cpu"].append(cpu)
    rows = []
    for exe, record in runs.items():
        version = subprocess.run([str(Path(exe).with_name("python")), "-c", "import typer; print(typer.__version__)"],
                                 capture_output=True, text=True, cwd="/").stdout.strip()
        phases = {name: round(statistics.median(p[name] for p in record["phases"]), 1) for name in record["phases"][0]}
        rows.append({"segedge": exe, "typer": version, "run_wall_ms": median_ms(record["wall"]),
                     "run_cpu_ms": median_ms(record["cpu"]), "python_start_ms": median_ms(record["python_wall"]),
                     "phases_ms": phases})
        print(json.dumps(rows[-1]))
    if args.mediapipe:
        rows.append({"mediapipe_script": args.mediapipe, "run_wall_ms": median_ms(mediapipe["wall"]),
                     "run_cpu_ms": median_ms(mediapipe["cpu"])})
        print(json.dumps(rows[-1]))
    machine = machine_info()
    slug = re.sub(r"[^a-z0-9]+", "-", f"{machine['cpu']} {'-'.join(machine['isa'])}".lower()).strip("-")
    out = RESULTS / f"startup_{slug}.json"
    out.write_text(json.dumps({"machine": machine, "photo": args.photo.name, "engine": args.engine,
                               "rounds": args.rounds, "loadavg_before": load_before,
                               "loadavg_after": Path("/proc/loadavg").read_text().split()[:3], "rows": rows},
                              indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
