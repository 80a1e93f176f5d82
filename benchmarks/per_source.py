"""Per-source accuracy (issue 19): MediaPipe selfie segmentation and the embedded models on each val folder and on
each source prefix inside it (ccp_*, vik_*, eg_*, voc_*), foreground IoU and boundary IoU, guided upsampling for
every model as `segedge eval` scores by default; the issue's targets for the default model beside them.

The segedge models go through segedge.evaluate (what `segedge eval --json` prints), MediaPipe through
benchmarks/mediapipe_compare.py in its own environment (see that script's header). Accuracy only: on a shared
machine timings would mean little, so none are recorded. Writes benchmarks/results/per_source.json and .md:

    .venv/bin/python benchmarks/per_source.py --mediapipe-python /work/mpvenv/bin/python
"""

from __future__ import annotations

import argparse
import datetime
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from recording import RESULTS, write_result

from segedge.bench import machine_info
from segedge.cpu import ISA_FLAGS
from segedge.evaluate import evaluate
from segedge.runtime import Segmenter

BENCHMARKS = Path(__file__).resolve().parent
PEOPLE = BENCHMARKS.parent.parent / "shared" / "data" / "people"
FOLDERS = ("val", "val-portraits", "val-scenes")
MEDIAPIPE = "MediaPipe selfie"
MODELS = {"default": "default FP32", "default-int8": "default INT8", "fast": "fast"}
# issue 19's targets for the (new) default model: foreground IoU, guided upsampling
TARGETS = {"val": 0.945, "vik": 0.88, "val-portraits": 0.970, "val-scenes": 0.77}
COMMANDS = ("segedge eval --engine default|default-int8|fast ../shared/data/people/FOLDER --json",
            "/work/mpvenv/bin/python benchmarks/mediapipe_compare.py ../shared/data/people/val "
            "../shared/data/people/val-portraits ../shared/data/people/val-scenes",
            ".venv/bin/python benchmarks/per_source.py --mediapipe-python /work/mpvenv/bin/python  # both, and this")


def scores(result: dict) -> dict:
    """Folder and per-source (images, iou, boundary_iou) from one `segedge eval` result."""
    pick = {key: result[key] for key in ("images", "iou", "boundary_iou")}
    return {**pick, "by_source": {source: {key: values[key] for key in pick}
                                  for source, values in result["by_source"].items()}}


def mediapipe_scores(python: str) -> dict:
    """mediapipe_compare.py's guided-upsampling figures, in the shape scores() gives."""
    with tempfile.TemporaryDirectory() as work:
        out = Path(work) / "mediapipe.json"
        subprocess.run([python, str(BENCHMARKS / "mediapipe_compare.py"), "--out", str(out),
                        *(str(PEOPLE / folder) for folder in FOLDERS)], check=True, stdout=subprocess.DEVNULL)
        results = json.loads(out.read_text())["results"]

    def guided(values: dict) -> dict:
        return {"images": values["images"], "iou": values["iou_guided"], "boundary_iou": values["boundary_iou_guided"]}

    return {folder: {**guided(values), "by_source": {source: guided(by_source)
                                                      for source, by_source in values["by_source"].items()}}
            for folder, values in results.items()}


def measure(mediapipe_python: str) -> dict:
    results = {MEDIAPIPE: mediapipe_scores(mediapipe_python)}
    for engine, label in MODELS.items():
        segmenter = Segmenter(engine)
        results[label] = {folder: scores(evaluate(segmenter, PEOPLE / folder, quiet=True)) for folder in FOLDERS}
        print(f"{label}: done", file=sys.stderr)
    return {"what": "per-image foreground IoU and boundary IoU (band 2% of the diagonal) at each model's threshold, "
                    "mean over images, guided upsampling", "date": datetime.date.today().isoformat(),
            "machine": machine_info(), "commands": COMMANDS, "targets_default": TARGETS, "results": results}


def rows(result: dict) -> list[tuple[str, str, list[dict]]]:
    """(row label, target key, one score dict per model) for each folder, then each source prefix inside it."""
    models = result["results"]
    table = []
    for folder in FOLDERS:
        first = models[MEDIAPIPE][folder]
        table.append((f"**{folder}**", folder, [models[model][folder] for model in models]))
        for source in first["by_source"]:
            whole = " (the whole folder)" if len(first["by_source"]) == 1 else ""
            table.append((f"{folder}: `{source}_*`{whole}", source,
                          [models[model][folder]["by_source"][source] for model in models]))
    return table


def target_cell(target: float | None, default_iou: float) -> str:
    if target is None:
        return "-"
    gap = default_iou - target
    return f">= {target:.3f}: {'met' if gap >= 0 else 'missed'} by {abs(gap):.4f}"


def isa_text(present: list[str]) -> str:
    """'AVX2 (no AVX-512, AVX-512 VNNI, ...)': which of the flags that change INT8 kernels the CPU has, and lacks."""
    absent = [name for name in ISA_FLAGS.values() if name not in present and not name.startswith("ARM")]
    return f"{', '.join(present) or 'none'} (no {', '.join(absent)})" if absent else ", ".join(present)


def markdown(result: dict) -> str:
    machine, models = result["machine"], list(result["results"])
    lines = ["# Per-source accuracy: MediaPipe and the embedded models on each val folder and source (issue 19)", "",
             f"{result['date']}; CPU: {machine['cpu']} ({machine['cores']} cores; ISA flags from /proc/cpuinfo: "
             f"{isa_text(machine['isa'])}; INT8 kernels: {machine['int8_kernels']}), "
             f"onnxruntime {machine.get('onnxruntime')}. {result['what'][0].upper()}{result['what'][1:]} "
             "(`segedge eval`'s default; MediaPipe through `benchmarks/mediapipe_compare.py`, its `_guided` figures). "
             "A source is the file name's prefix before the first `_`. Accuracy only: no latencies (shared machine). "
             "Commands:", ""]
    lines += [f"    {command}" for command in result["commands"]]
    lines += ["", "JSON: `per_source.json`. Each cell: foreground IoU / boundary IoU; target: issue 19's for the "
              "default model (foreground IoU), against default FP32.", "",
              f"| folder / source | images | {' | '.join(models)} | #19 target (default FP32) |",
              "|---|---|" + "---|" * len(models) + "---|"]
    for label, key, cells in rows(result):
        values = " | ".join(f"{cell['iou']:.4f} / {cell['boundary_iou']:.4f}" for cell in cells)
        default = cells[models.index(MODELS["default"])]["iou"]
        lines.append(f"| {label} | {cells[0]['images']} | {values} | {target_cell(TARGETS.get(key), default)} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mediapipe-python", help="python of the MediaPipe environment")
    parser.add_argument("--from-json", type=Path, help="rewrite the Markdown from a saved per_source.json")
    args = parser.parse_args()
    if not (args.mediapipe_python or args.from_json):
        parser.error("give --mediapipe-python (or --from-json to rewrite the Markdown)")
    result = json.loads(args.from_json.read_text()) if args.from_json else measure(args.mediapipe_python)
    write_result(RESULTS / "per_source.json", result, markdown)


if __name__ == "__main__":
    main()
