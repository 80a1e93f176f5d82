"""MediaPipe selfie segmentation (general, 256x256) on the same val folders and with the same metric as `segedge eval`.

Not a segedge dependency: run it in a separate environment.

    python -m venv /tmp/mpvenv && /tmp/mpvenv/bin/pip install ai-edge-litert opencv-python-headless numpy
    pip download --no-deps mediapipe==0.10.21 -d /tmp/mp        # only to take the .tflite out of the wheel
    /tmp/mpvenv/bin/python benchmarks/mediapipe_compare.py --wheel /tmp/mp/mediapipe-0.10.21-*.whl \
        --out benchmarks/results/mediapipe.json ../shared/data/people/val ../shared/data/people/val-portraits ...

Metric (identical to segedge/metrics.py, copied so this script needs no segedge install): per-image foreground IoU
and mIoU at threshold 0.5, prediction resized up to the mask's size, mean over images.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
import zipfile
from pathlib import Path

import cv2
import numpy as np

MODEL_IN_WHEEL = "mediapipe/modules/selfie_segmentation/selfie_segmentation.tflite"


def load_model(wheel: Path, threads: int):
    from ai_edge_litert.interpreter import Interpreter

    with zipfile.ZipFile(wheel) as archive:
        content = archive.read(MODEL_IN_WHEEL)
    interpreter = Interpreter(model_content=content, num_threads=threads)
    interpreter.allocate_tensors()
    return interpreter


def predict(interpreter, rgb: np.ndarray) -> np.ndarray:
    """RGB uint8 -> person probability at the image's size (input: float RGB in [0, 1], NHWC 256x256)."""
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    height, width = inp["shape"][1:3]
    x = cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA).astype(np.float32)[None] / 255.0
    interpreter.set_tensor(inp["index"], x)
    interpreter.invoke()
    prob = interpreter.get_tensor(out["index"])[0, ..., 0]
    return cv2.resize(prob, (rgb.shape[1], rgb.shape[0]), interpolation=cv2.INTER_LINEAR)


def iou_pair(pred: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    tp = np.count_nonzero(pred & truth)
    fp = np.count_nonzero(pred & ~truth)
    fn = np.count_nonzero(~pred & truth)
    tn = pred.size - tp - fp - fn
    fg = 1.0 if tp + fp + fn == 0 else tp / (tp + fp + fn)
    bg = 1.0 if tn + fp + fn == 0 else tn / (tn + fp + fn)
    return fg, (fg + bg) / 2


def evaluate(interpreter, folder: Path) -> dict:
    ious, mious, seconds = [], [], 0.0
    for image_path in sorted((folder / "images").iterdir()):
        mask_path = folder / "masks" / f"{image_path.stem}.png"
        rgb = cv2.cvtColor(cv2.imread(str(image_path)), cv2.COLOR_BGR2RGB)
        truth = cv2.imread(str(mask_path), cv2.IMREAD_GRAYSCALE) > 127
        started = time.perf_counter()
        prob = predict(interpreter, rgb)
        seconds += time.perf_counter() - started
        fg, mean = iou_pair(prob > 0.5, truth)
        ious.append(fg)
        mious.append(mean)
    return {"iou": round(float(np.mean(ious)), 4), "miou": round(float(np.mean(mious)), 4), "images": len(ious),
            "ms_per_image": round(1000 * seconds / len(ious), 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folders", nargs="+", type=Path)
    parser.add_argument("--wheel", type=Path, required=True, help="mediapipe-0.10.21 wheel holding the .tflite")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    interpreter = load_model(args.wheel, args.threads)
    results = {folder.name: evaluate(interpreter, folder) for folder in args.folders}
    payload = {"model": f"MediaPipe selfie segmentation (general, 256x256) from {args.wheel.name}",
               "machine": {"platform": platform.platform(), "cores": os.cpu_count(), "threads": args.threads},
               "results": results}
    text = json.dumps(payload, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
