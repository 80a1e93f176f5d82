"""Produce the published CPU numbers: latency of every backend vs eager torch for the default edge model
(MobileNetV2 DeepLabv3+, separable 128-wide head, 320x320) and for the classic ResNet50 DeepLabv3+ at 640, the
video pipeline's stage shares, and accuracy of the shipped default model on each val folder beside MediaPipe's.
Writes OUT/bench_*.json + .png, OUT/accuracy_default.json and OUT/README.md (a Markdown table built from the JSON).

    .venv/bin/python benchmarks/run_cpu.py                       # the published run (--runs 50), idle machine only
    .venv/bin/python benchmarks/run_cpu.py --runs 3 --warmup 1 --limit 4 --out /tmp/bench-smoke   # does it work?
    .venv/bin/python benchmarks/run_cpu.py --accuracy-only fast runs/fast.int8.onnx   # accuracy_fast.json only

--checkpoint defaults to the shipped default model: its PyTorch weights (segedge/models/default.pth) for the eager
rows beside its shipped default.onnx and default.int8.onnx, so every row is the file users run. The ResNet50 model is
always random init: it is only there for latency. Numbers are comparable only
within one run on an otherwise idle machine (a training job on the same cores inflates eager torch most).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
from dataclasses import asdict
from pathlib import Path

from segedge.backends import resolve_model
from segedge.bench import BenchOptions, machine_info, run_bench, write_json, write_plot
from segedge.evaluate import evaluate
from segedge.runtime import Segmenter
from segedge.spec import ModelSpec

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results"
PEOPLE = REPO.parent / "shared" / "data" / "people"
FOLDERS = ("val", "val-portraits", "val-scenes")
MODELS = REPO / "segedge" / "models"
TARGETS = {"val": 0.93, "val-portraits": 0.965, "val-scenes": 0.72}  # issue targets for the default model
EDGE_SPEC = ModelSpec(backbone="mobilenet_v2", head_channels=128, separable=True, input_size=(320, 320),
                      name="deeplabv3plus-mobilenetv2-random-init")
RESNET_SPEC = ModelSpec(backbone="resnet50", head_channels=256, input_size=(640, 640),
                        name="deeplabv3plus-resnet50-random-init")


def random_checkpoint(spec: ModelSpec, path: Path) -> Path:
    """A random-init checkpoint: the same graph and cost as a trained one, so enough for latency."""
    from segedge.training.checkpoint import save_checkpoint
    from segedge.training.model import build_model

    save_checkpoint(path, {"model": build_model(spec).state_dict(), "spec": spec.to_dict(), "epoch": 0})
    return path


def make_video(folder: Path) -> Path:
    """A 10 s 640x360 clip with audio from Debian's opencv-doc pedestrian video when present, else a test pattern."""
    source = Path("/usr/share/doc/opencv-doc/examples/data/vtest.avi")
    video = folder / "pipeline.mp4"
    inputs = ["-i", str(source)] if source.exists() else ["-f", "lavfi", "-i", "testsrc=size=768x576:rate=10"]
    subprocess.run(["ffmpeg", "-v", "error", "-y", *inputs, "-f", "lavfi", "-i", "sine=duration=10", "-t", "10",
                    "-vf", "scale=640:360", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest",
                    str(video)], check=True)
    return video


def bench(name: str, options: BenchOptions, out: Path) -> dict:
    rows, pipeline = run_bench(options)
    write_json(rows, out / f"bench_{name}.json", {"options": asdict(options), "pipeline": pipeline})
    write_plot(rows, out / f"bench_{name}.png", title=f"{name} on {machine_info()['cpu']}")
    return {"rows": [asdict(r) for r in rows], "pipeline": pipeline}


def accuracy_models(checkpoint: Path, trained: bool) -> list[Path]:
    """The shipped default model (and its INT8 copy) once it exists, else the trained checkpoint, else nothing."""
    shipped = [MODELS / name for name in ("default.onnx", "default.int8.onnx") if (MODELS / name).is_file()]
    return shipped or ([checkpoint] if trained else [])


def accuracy(models: list[Path], threads: int, limit: int | None, out: Path, name: str = "default") -> dict:
    """Each model on each val folder, scored on the guided-upsampled matte `segedge run` outputs and on plain
    bilinear upsampling (the training log's figure); written to OUT/accuracy_NAME.json."""
    results = {}
    for model in models:
        segmenters = {"guided": Segmenter(model, threads=threads), "bilinear": Segmenter(model, threads=threads,
                                                                                         refine=False)}
        results[model.name] = {folder: {kind: evaluate(segmenter, PEOPLE / folder, quiet=True, limit=limit)
                                        for kind, segmenter in segmenters.items()} for folder in FOLDERS}
    (out / f"accuracy_{name}.json").write_text(json.dumps({"machine": machine_info(), "limit": limit, **results},
                                                          indent=2) + "\n")
    return results


def _cell(value) -> str:
    return "-" if value is None else str(value)


def latency_table(name: str, result: dict) -> list[str]:
    lines = [f"## Latency: {name}\n", "| backend | precision | input | size MB | IoU vs eager | IoU vs GT | "
             "p50 ms | p90 ms | p99 ms | FPS | speedup vs eager | peak mem MB |", "|" + "---|" * 12]
    for row in result["rows"]:
        if row["status"] != "ok":
            lines.append(f"| {row['backend']} | {row['status']} |" + " |" * 10)
            continue
        lines.append("| " + " | ".join(_cell(row[key]) for key in (
            "backend", "precision", "input", "size_mb", "iou_vs_eager", "iou_vs_truth", "p50_ms", "p90_ms",
            "p99_ms", "fps", "speedup_vs_eager", "memory_mb")) + " |")
    pipe = result["pipeline"]
    if pipe:
        shares = ", ".join(f"{k} {100 * v:.0f}%" for k, v in pipe["stage_share"].items())
        lines.append(f"\nVideo pipeline ({pipe['frames']} frames of 640x360): threaded {pipe['pipeline_fps']} "
                     f"frames/s vs model alone {pipe['model_only_fps']} frames/s "
                     f"({100 * pipe['pipeline_vs_model']:.0f}%); time per stage when run one after another: {shares}.")
    return lines + [""]


def accuracy_table(scores: dict, mediapipe: dict) -> list[str]:
    models = list(scores)
    lines = ["## Accuracy (per-image foreground IoU at the model's threshold, mean over images; guided upsampling as "
             "`segedge run` outputs / plain bilinear as the training log reports; mIoU of the guided matte in "
             "brackets)\n",
             "| folder | MediaPipe selfie | " + " | ".join(models) + " | target |",
             "|" + "---|" * (3 + len(models))]
    for folder in FOLDERS:
        mp = mediapipe.get(folder)
        cells = [f"{mp['iou_guided']} / {mp['iou']} ({mp['miou_guided']})" if mp else "-"]
        cells += [f"{scores[m][folder]['guided']['iou']} / {scores[m][folder]['bilinear']['iou']} "
                  f"({scores[m][folder]['guided']['miou']})" for m in models]
        lines.append(f"| {folder} | " + " | ".join(cells) + f" | >= {TARGETS[folder]} |")
    if not models:
        lines.append("\nNo trained default model yet (segedge/models/default.onnx or a trained checkpoint): "
                     "accuracy columns left out.")
    return lines + [""]


def markdown(benches: dict, scores: dict, notes: list[str], out: Path) -> str:
    info = machine_info()
    mediapipe_file = next((f for f in (out / "mediapipe.json", RESULTS / "mediapipe.json") if f.is_file()), None)
    mediapipe = json.loads(mediapipe_file.read_text())["results"] if mediapipe_file else {}
    lines = [f"# Recorded results\n\nMachine: {info['cpu']}, {info['cores']} cores, {info['platform']}, Python "
             f"{info['python']}, onnxruntime {info.get('onnxruntime')}, torch {info.get('torch')}. Generated by "
             "`benchmarks/run_cpu.py` from the JSON files beside this one; speedups are measured in one run on the "
             "same input. Peak memory is the host RAM a backend adds while loading and running (VmHWM).\n",
             *[f"- {note}" for note in notes], ""]
    for name, result in benches.items():
        lines += latency_table(name, result)
    return "\n".join(lines + accuracy_table(scores, mediapipe))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, help="the default model's training checkpoint")
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--limit", type=int, help="images per val folder for accuracy (default: all)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--accuracy-only", nargs="+", metavar="MODEL", help="only score these models (embedded "
                        "names or files) on the val folders -> OUT/accuracy_<first model's name>.json")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.accuracy_only:
        models = [resolve_model(model) for model in args.accuracy_only]
        accuracy(models, args.threads, args.limit, args.out, name=models[0].name.split(".")[0])
        return
    with tempfile.TemporaryDirectory() as workdir:
        workdir = Path(workdir)
        shipped = args.checkpoint is None and (MODELS / "default.pth").is_file()
        checkpoint = MODELS / "default.pth" if shipped else args.checkpoint
        trained = checkpoint is not None
        notes = [f"Edge model: {'the shipped default model' if shipped else checkpoint}" if trained else
                 "Edge model: random-init MobileNetV2 DeepLabv3+ (head 128, separable, 320): latency only."]
        checkpoint = checkpoint or random_checkpoint(EDGE_SPEC, workdir / "mnv2_320.pth")
        engines = [MODELS / "default.onnx"] if shipped else []  # its .int8.onnx beside it is picked up too
        notes.append("ResNet50 DeepLabv3+ at 640 is random init: latency only, its IoU columns mean nothing.")
        notes.append(f"Timing: {args.runs} runs after {args.warmup} warm-up, {args.threads} threads; accuracy on "
                     + (f"the first {args.limit} images of each folder (a smoke run, not the published figure)."
                        if args.limit else "every image of each folder."))
        common = dict(warmup=args.warmup, threads=args.threads, data=PEOPLE / "val")
        benches = {
            "default-mobilenetv2-320": bench("default-mobilenetv2-320", BenchOptions(
                checkpoint=checkpoint, engines=engines, pipeline=make_video(workdir), runs=args.runs, **common),
                args.out),
            "resnet50-640": bench("resnet50-640", BenchOptions(
                checkpoint=random_checkpoint(RESNET_SPEC, workdir / "resnet50_640.pth"),
                backends=("torch", "onnxruntime", "onnxruntime-int8"), runs=max(3, args.runs // 5), **common),
                args.out),
        }
        scores = accuracy(accuracy_models(checkpoint, trained), args.threads, args.limit, args.out)
    (args.out / "README.md").write_text(markdown(benches, scores, notes, args.out))
    print((args.out / "README.md").read_text())


if __name__ == "__main__":
    main()
