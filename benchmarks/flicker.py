"""Temporal flicker of segedge's mattes on real static-camera footage, with and without temporal smoothing, and of
MediaPipe's selfie segmentation for comparison.

    apt-get install -y opencv-doc     # ships vtest.avi: a fixed camera, people walking (768x576, 10 frames/s)
    .venv/bin/python benchmarks/flicker.py --out benchmarks/results/flicker_amd-epyc-avx2.json \
        /usr/share/doc/opencv-doc/examples/data/vtest.avi
    # MediaPipe, in the environment of benchmarks/mediapipe_compare.py (its rows are added to the same file):
    /work/mpvenv/bin/python benchmarks/flicker.py --mediapipe --out benchmarks/results/flicker_amd-epyc-avx2.json \
        /usr/share/doc/opencv-doc/examples/data/vtest.avi

Per model, the probabilities of every frame are computed once; each smoothing setting then runs on them exactly as
stream() does (smoother, then guided upsampling to the full frame). Figures, mean over consecutive frame pairs:

- flip_share: share of pixels whose mask (matte >= 0.5) flips; flip_share_still: the same over the pixels where the
  frame itself did not change (luminance change < 2/255 in a 5x5 neighbourhood): there any flip is flicker, not
  motion.
- matte_change: mean |matte_t - matte_t-1|; matte_change_still: the same over the still pixels.
- trail: mean |smoothed matte - unsmoothed matte| over the pixels where the frame changed: how far a smoothed
  matte lags behind the person (0 for no smoothing); trail_flip_share: the share of those pixels whose mask differs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from itertools import pairwise
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # recording.py beside this script

from recording import print_json  # noqa: E402

from segedge.cpu import cpu_model, isa_flags  # noqa: E402  (numpy and opencv only, like segedge.refine)
from segedge.refine import TemporalSmoother, upsample_mask  # noqa: E402

SETTINGS = {"off": (0.0, False), "ema-0.5": (0.5, False), "motion-0.5": (0.5, True), "ema-0.7": (0.7, False),
            "motion-0.7": (0.7, True)}
STILL = 2 / 255  # luminance change below which a pixel counts as still


def read_frames(path: Path, limit: int) -> list[np.ndarray]:
    capture, frames = cv2.VideoCapture(str(path)), []
    while len(frames) < limit and (result := capture.read())[0]:
        frames.append(cv2.cvtColor(result[1], cv2.COLOR_BGR2RGB))
    capture.release()
    if not frames:
        raise SystemExit(f"no frames in {path}")
    return frames


def still_masks(frames: list[np.ndarray]) -> list[np.ndarray]:
    """Per consecutive pair, where the frame did not change (a 5x5 max of the luminance change stays small)."""
    gray = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY).astype(np.float32) / 255 for f in frames]
    kernel = np.ones((5, 5), np.uint8)
    return [cv2.dilate(np.abs(b - a), kernel) < STILL for a, b in pairwise(gray)]


def mattes(segmenter, frames: list[np.ndarray], probs: list[np.ndarray], strength: float,
           motion_aware: bool) -> list[np.ndarray]:
    smoother = TemporalSmoother(strength, motion_aware)
    return [segmenter.to_matte(smoother(prob, frame), frame) for frame, prob in zip(frames, probs, strict=True)]


def figures(result: list[np.ndarray], raw: list[np.ndarray], still: list[np.ndarray]) -> dict[str, float]:
    flips, flips_still, change, change_still, trail, trail_flips = [], [], [], [], [], []
    for t in range(1, len(result)):
        flipped = (result[t] >= 0.5) != (result[t - 1] >= 0.5)
        delta = np.abs(result[t] - result[t - 1])
        flips.append(flipped.mean())
        change.append(delta.mean())
        if still[t - 1].any():
            flips_still.append(flipped[still[t - 1]].mean())
            change_still.append(delta[still[t - 1]].mean())
        moving = ~still[t - 1]
        if moving.any():
            trail.append(np.abs(result[t] - raw[t])[moving].mean())
            trail_flips.append(((result[t] >= 0.5) != (raw[t] >= 0.5))[moving].mean())
    mean = lambda values: round(float(np.mean(values)), 5) if values else None  # noqa: E731
    return {"flip_share": mean(flips), "flip_share_still": mean(flips_still), "matte_change": mean(change),
            "matte_change_still": mean(change_still), "trail": mean(trail), "trail_flip_share": mean(trail_flips)}


class MediaPipe:
    """MediaPipe selfie segmentation through benchmarks/mediapipe_compare.py, refined with segedge's guided
    upsampling as `segedge eval` refines segedge's own models (the `_guided` scores there)."""

    def __init__(self, threads: int | None):
        from mediapipe_compare import load_model, model_bytes, predict

        self.interpreter, self.predict = load_model(model_bytes(None)[0], threads or 2), predict

    def probabilities(self, frame: np.ndarray) -> np.ndarray:
        return self.predict(self.interpreter, frame)

    def to_matte(self, prob: np.ndarray, frame: np.ndarray) -> np.ndarray:
        return upsample_mask(prob, frame)


def measure(engine: str, frames: list[np.ndarray], still: list[np.ndarray], threads: int | None) -> dict:
    if engine == "mediapipe":
        segmenter = MediaPipe(threads)
        probs = [segmenter.probabilities(frame) for frame in frames]
        name = "MediaPipe selfie segmentation (general, 256x256), guided upsampling"
    else:
        from segedge.runtime import Segmenter  # onnxruntime: not in MediaPipe's environment

        segmenter = Segmenter(engine, threads=threads)
        probs = [segmenter.infer(segmenter.model_inputs([frame]))[0] for frame in frames]
        name = segmenter.backend.describe()
    raw = mattes(segmenter, frames, probs, 0.0, False)
    rows = {name: figures(mattes(segmenter, frames, probs, *setting) if setting[0] else raw, raw, still)
            for name, setting in SETTINGS.items()}
    return {"model": name, "settings": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("video", type=Path)
    parser.add_argument("--engine", action="append", help="model(s) to measure (default: default; repeatable)")
    parser.add_argument("--mediapipe", action="store_true", help="measure MediaPipe instead (its own environment)")
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--threads", type=int)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    engines = ["mediapipe"] if args.mediapipe else args.engine or ["default"]
    frames = read_frames(args.video, args.frames)
    still = still_masks(frames)
    report = {"video": args.video.name, "frames": len(frames), "size": list(frames[0].shape[1::-1]),
              "still_share": round(float(np.mean([s.mean() for s in still])), 4),
              "machine": {"cpu": cpu_model(), "isa": isa_flags(), "cores": os.cpu_count(),
                          "platform": platform.platform(), "python": platform.python_version()},
              "settings": {name: {"strength": s, "motion_aware": m} for name, (s, m) in SETTINGS.items()},
              "models": {engine: measure(engine, frames, still, args.threads) for engine in engines}}
    if args.out and args.out.exists():  # rows of another run (the other environment) are kept
        report["models"] = json.loads(args.out.read_text())["models"] | report["models"]
    print_json(report, args.out)


if __name__ == "__main__":
    main()
