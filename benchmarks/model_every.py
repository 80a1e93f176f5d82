"""What `--model-every N` costs in quality, with and without motion compensation (the matte moved along the optical
flow to each frame the model skips), against the model on every frame, on real footage.

    apt-get install -y opencv-doc     # vtest.avi: a fixed camera, people walking (768x576, 10 frames/s)
    D=/usr/share/doc/opencv-doc/examples/data
    .venv/bin/python benchmarks/model_every.py --frames 90 --size 1280x720 --engine default --engine fast \
        --out benchmarks/results/model_every_vtest_amd-epyc-avx2.json $D/vtest.avi
    # Megamind.avi (same package): 24 frames/s head-and-shoulders close-ups, the video-call case
    .venv/bin/python benchmarks/model_every.py --frames 150 --size 960x704 --engine default --engine fast \
        --out benchmarks/results/model_every_megamind_amd-epyc-avx2.json $D/Megamind.avi

Every path runs the real `stream()` loop as `segedge run` does on a video (refinement at 640x360's pixels, motion-
aware smoothing 0.5), effect `mask`. Figures per path, against the every-frame path: mask IoU per frame (mean and
min), the share of pixels whose mask differs, and `benchmarks/flicker.py`'s flicker and trail figures; plus the
refine stage's milliseconds per frame (which holds the flow) and the model's.
vtest is 10 frames/s footage: per frame people move 3x as far as in a 30 frames/s camera, a hard case for reuse.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from flicker import figures, read_frames, still_masks  # noqa: E402
from recording import load_average, result_path, write_result  # noqa: E402

from segedge.bench import machine_info  # noqa: E402
from segedge.metrics import mask_metrics  # noqa: E402
from segedge.runtime import Segmenter  # noqa: E402
from segedge.stream.loop import VIDEO, Speed, Stats, stream  # noqa: E402
from segedge.stream.sinks import Sink  # noqa: E402
from segedge.stream.sources import Frame, Source  # noqa: E402

PATHS = {"every frame": VIDEO, "every 2, reuse": Speed(2, VIDEO.refine_pixels, warp=False),
         "every 2, warp": Speed(2, VIDEO.refine_pixels), "every 3, reuse": Speed(3, VIDEO.refine_pixels, warp=False),
         "every 3, warp": Speed(3, VIDEO.refine_pixels)}


class Frames(Source):
    def __init__(self, frames: list[np.ndarray]):
        self.frames, self.total = frames, len(frames)

    def __iter__(self):
        return (Frame(rgb) for rgb in self.frames)


class Mattes(Sink):
    def __init__(self):
        self.mattes = []

    def write(self, image: np.ndarray, frame: Frame) -> None:
        self.mattes.append((image[..., 0] if image.ndim == 3 else image).astype(np.float32) / 255)


def run_path(segmenter, frames: list[np.ndarray], speed: Speed) -> tuple[list[np.ndarray], Stats]:
    sink = Mattes()
    stats = stream(Frames(frames), segmenter, sink, "mask", smooth=0.5, threaded=False, speed=speed)
    return sink.mattes, stats


def against(result: list[np.ndarray], reference: list[np.ndarray]) -> dict[str, float]:
    scores = [mask_metrics(ours >= 0.5, theirs >= 0.5) for ours, theirs in zip(result, reference, strict=True)]
    ious, differing = [s["iou"] for s in scores], [1 - s["pixel_accuracy"] for s in scores]
    return {"iou_mean": round(float(np.mean(ious)), 4), "iou_min": round(float(np.min(ious)), 4),
            "pixels_differing": round(float(np.mean(differing)), 5)}


def measure(engine: str, frames: list[np.ndarray]) -> dict[str, dict]:
    segmenter, still, rows = Segmenter(engine), still_masks(frames), {}
    reference = None
    for name, speed in PATHS.items():
        mattes, stats = run_path(segmenter, frames, speed)
        reference = reference or mattes
        per_frame = {stage: round(seconds / stats.frames * 1000, 2) for stage, seconds in stats.stage_seconds.items()}
        rows[name] = {**against(mattes, reference), **figures(mattes, reference, still), "ms_per_frame": per_frame}
        print(f"{engine:8s} {name:15s} IoU {rows[name]['iou_mean']:.4f} (min {rows[name]['iou_min']:.3f}) "
              f"differing {rows[name]['pixels_differing']:.4%} trail {rows[name]['trail']:.4f} "
              f"refine {per_frame['refine']:.1f} ms inference {per_frame['inference']:.1f} ms", flush=True)
    return rows


def markdown(result: dict) -> str:
    machine = result["machine"]
    lines = [f"# `--model-every N` with and without motion compensation ({result['video']} at {result['size']}, "
             f"first {result['frames']} frames)", "",
             f"CPU: {machine['cpu']} ({machine['cores']} cores; {', '.join(machine['isa']) or 'no AVX2'}); load "
             f"average {result['loadavg_before'][0]} before, {result['loadavg_after'][0]} after. Against the model on "
             "every frame; milliseconds are per frame, this process alone, one thread for the loop.", "",
             "| model | path | mask IoU mean (min) | pixels differing | flips, still px | trail | refine ms | "
             "model ms |", "|---|---|---|---|---|---|---|---|"]
    for engine, rows in result["results"].items():
        for name, row in rows.items():
            ms = row["ms_per_frame"]
            lines.append(f"| {engine} | {name} | {row['iou_mean']:.3f} ({row['iou_min']:.3f}) | "
                         f"{row['pixels_differing']:.3%} | {row['flip_share_still']:.3%} | {row['trail']:.4f} | "
                         f"{ms['refine']:.1f} | {ms['preprocess'] + ms['inference']:.1f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("video", type=Path)
    parser.add_argument("--size", default="1280x720", help="frames scaled to WIDTHxHEIGHT")
    parser.add_argument("--frames", type=int, default=90)
    parser.add_argument("--engine", action="append", help="embedded model name or model file (repeatable)")
    parser.add_argument("--out", type=Path, default=result_path("model_every"))
    args = parser.parse_args()
    width, height = (int(side) for side in args.size.split("x"))
    frames = [cv2.resize(f, (width, height), interpolation=cv2.INTER_AREA)
              for f in read_frames(args.video, args.frames)]
    before = load_average()
    results = {engine: measure(engine, frames) for engine in args.engine or ["default"]}
    write_result(args.out, {"machine": machine_info(), "video": args.video.name, "size": args.size,
                            "frames": len(frames), "smooth": 0.5, "loadavg_before": before,
                            "loadavg_after": load_average(), "results": results}, markdown)


if __name__ == "__main__":
    main()
