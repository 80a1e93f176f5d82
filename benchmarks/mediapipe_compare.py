"""MediaPipe selfie segmentation (general, 256x256) on the same val folders and with the same metric as `segedge eval`.

Not a segedge dependency: run it in its own environment. Only the .tflite file inside the mediapipe wheel and
ai-edge-litert's interpreter are used (mediapipe itself is never imported), so `--no-deps` keeps that environment
small (mediapipe's own dependencies pull in jax and pin numpy<2):

    python -m venv /work/mpvenv
    /work/mpvenv/bin/pip install ai-edge-litert opencv-python-headless numpy
    /work/mpvenv/bin/pip install --no-deps mediapipe==0.10.21
    # (the plain `pip install mediapipe==0.10.21 ai-edge-litert` works too, only heavier)
    /work/mpvenv/bin/python benchmarks/mediapipe_compare.py --out benchmarks/results/mediapipe.json \
        ../shared/data/people/val ../shared/data/people/val-portraits ../shared/data/people/val-scenes

`--wheel mediapipe-0.10.21-*.whl` (from `pip download --no-deps mediapipe==0.10.21`) reads the model straight from
the wheel instead of an installed package.

Metrics: segedge/metrics.py's own, loaded from this checkout (numpy + cv2, no segedge install needed), as
`segedge eval` scores: per-image foreground IoU, mIoU and boundary IoU (band of 2% of the image diagonal) at
threshold 0.5, prediction resized up to the mask's size, mean over images: bilinear (`iou`, `miou`, `boundary_iou`)
and with segedge's guided upsampling (`iou_guided`, ...; segedge/refine.py from this checkout), so MediaPipe gets
the same refinement `segedge eval` scores segedge's own models with. `by_source` holds the same per source prefix
of the file names (ccp_*, vik_*, ...: the stem before its first '_'), as `segedge eval`'s JSON does.
ms_per_image is resize + inference + resize back, as segedge eval's covers pre-processing + inference.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import sys
import time
import zipfile
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # segedge.refine from this checkout (numpy + cv2)
sys.path.insert(0, str(Path(__file__).resolve().parent))  # recording.py beside this script

from recording import print_json  # noqa: E402

MODEL_IN_WHEEL = "mediapipe/modules/selfie_segmentation/selfie_segmentation.tflite"


def model_bytes(wheel: Path | None) -> tuple[bytes, str]:
    """The selfie model from a wheel file, else from the installed mediapipe package (found, not imported)."""
    if wheel is not None:
        with zipfile.ZipFile(wheel) as archive:
            return archive.read(MODEL_IN_WHEEL), wheel.name
    spec = importlib.util.find_spec("mediapipe")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("mediapipe not installed: pip install --no-deps mediapipe==0.10.21, or pass --wheel")
    path = Path(spec.submodule_search_locations[0]).parent / MODEL_IN_WHEEL
    return path.read_bytes(), str(path)


def load_model(content: bytes, threads: int):
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=content, num_threads=threads)
    interpreter.allocate_tensors()
    return interpreter


def predict(interpreter, rgb: np.ndarray) -> np.ndarray:
    """RGB uint8 -> person probability at model resolution (input: float RGB in [0, 1], NHWC 256x256)."""
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    height, width = inp["shape"][1:3]
    x = cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA).astype(np.float32)[None] / 255.0
    interpreter.set_tensor(inp["index"], x)
    interpreter.invoke()
    return interpreter.get_tensor(out["index"])[0, ..., 0]


def pairs(folder: Path) -> list[tuple[Path, Path]]:
    """(image, mask) by file stem, as segedge eval pairs them; unpaired files are reported by name."""
    images = {p.stem: p for p in sorted((folder / "images").iterdir())}
    masks = {p.stem: p for p in sorted((folder / "masks").glob("*.png"))}
    for stem in sorted(images.keys() ^ masks.keys()):
        print(f"warning: {(images | masks)[stem]} has no partner; skipped", file=sys.stderr)
    return [(images[stem], masks[stem]) for stem in sorted(images.keys() & masks.keys())]


def evaluate(interpreter, folder: Path) -> dict:
    """The folder's means, bilinear and guided (keys with `_guided`), and the same per source (`by_source`)."""
    from segedge.metrics import SourceAverager
    from segedge.refine import upsample_mask

    scores, seconds = {"": SourceAverager(), "_guided": SourceAverager()}, 0.0
    for image_path, mask_path in pairs(folder):
        rgb = cv2.cvtColor(cv2.imread(str(image_path)), cv2.COLOR_BGR2RGB)
        truth = cv2.imread(str(mask_path), cv2.IMREAD_GRAYSCALE) > 127
        started = time.perf_counter()
        prob = predict(interpreter, rgb)
        bilinear = cv2.resize(prob, (rgb.shape[1], rgb.shape[0]), interpolation=cv2.INTER_LINEAR)
        seconds += time.perf_counter() - started
        scores[""].add(image_path, bilinear > 0.5, truth)
        scores["_guided"].add(image_path, upsample_mask(prob, rgb) > 0.5, truth)
    count = scores[""].overall.count
    by_source = {source: {"images": averager.count} for source, averager in scores[""].sources.items()}
    for suffix, averager in scores.items():
        for source, source_scores in averager.sources.items():
            by_source[source] |= reported(source_scores.result(), suffix)
    return {**reported(scores[""].overall.result(), ""), **reported(scores["_guided"].overall.result(), "_guided"),
            "images": count, "ms_per_image": round(1000 * seconds / count, 2),
            "by_source": dict(sorted(by_source.items()))}


def reported(means: dict[str, float], suffix: str) -> dict[str, float]:
    """The metrics this script has always reported, rounded, their names ending in `suffix`."""
    return {f"{key}{suffix}": round(means[key], 4) for key in ("iou", "miou", "boundary_iou")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folders", nargs="+", type=Path)
    parser.add_argument("--wheel", type=Path, help="mediapipe-0.10.21 wheel holding the .tflite (default: the "
                        "installed mediapipe package)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    content, source = model_bytes(args.wheel)
    interpreter = load_model(content, args.threads)
    results = {folder.name: evaluate(interpreter, folder) for folder in args.folders}
    payload = {"model": f"MediaPipe selfie segmentation (general, 256x256) from {source}",
               "machine": {"platform": platform.platform(), "cores": os.cpu_count(), "threads": args.threads},
               "results": results}
    print_json(payload, args.out)


if __name__ == "__main__":
    main()
