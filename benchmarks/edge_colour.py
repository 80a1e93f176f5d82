"""Foreground colour estimation in the soft edge (segedge/foreground.py): its cost, and the colour error it removes.

    .venv/bin/python benchmarks/edge_colour.py --out benchmarks/results/edge_colour_amd-epyc-avx2.json \
        --crop benchmarks/results/edge_colour_crop.png ../shared/data/people/val-portraits

Cost: one val image covered to 1280x720 and 1920x1080, its matte from the embedded default model (computed once);
median ms over interleaved runs of the estimator alone and of `replace` and `remove` with and without it. On a shared
machine read the ratios within one run; the load average before and after is recorded.

Error, with a known answer: each image's own pixels are the foreground F, its ground-truth mask feathered (Gaussian,
sigma = shorter side / 240: a 0.02..0.98 ramp about 12 px wide at 720p, as wide as the model's soft edge) the alpha,
composited over a saturated colour and over a photo (another folder's image) as I = alpha * F + (1 - alpha) * B.
The composite of any new background C then errs by alpha * |F_used - F| (C cancels), where F_used is I without
estimation and the estimate with it: `composite_error` is its mean over the soft band (8-bit levels, all channels),
`fg_error` the mean |F_used - F| there. Rows: none (the frame as is), fast (segedge's path), reference (the
paper's two passes at full resolution over the whole frame).

The crop: the model's own matte on one image, replaced onto a saturated colour without and with estimation.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # recording.py beside this script

from recording import print_json  # noqa: E402

from segedge.bench.timing import machine_info  # noqa: E402
from segedge.effects import alpha_to_uint8, cover, remove_background, replace_background  # noqa: E402
from segedge.foreground import estimate_foreground, estimate_foreground_reference, soft_band  # noqa: E402
from segedge.media import read_image  # noqa: E402
from segedge.pairs import find_pairs, read_pair  # noqa: E402

SIZES = {"720p": (1280, 720), "1080p": (1920, 1080)}
SATURATED = (0, 200, 0)  # a green screen: the background colour that shows most as a halo on skin and hair
NEW_BACKGROUND = (200, 0, 200)  # magenta: what the crop replaces it with


def median_ms(function, runs: int) -> float:
    function()
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return round(1000 * float(np.median(times)), 2)


def timing(image: np.ndarray, segmenter, runs: int) -> dict:
    results = {}
    for name, (width, height) in SIZES.items():
        frame = cover(image, (height, width))
        alpha = segmenter.mask(frame)
        alpha8 = alpha_to_uint8(alpha)
        cases = {
            "estimator": lambda f=frame, a=alpha8: estimate_foreground(f, a),
            "replace_off": lambda f=frame, a=alpha: replace_background(f, a, SATURATED, clean_edges=False),
            "replace_on": lambda f=frame, a=alpha: replace_background(f, a, SATURATED, clean_edges=True),
            "remove_off": lambda f=frame, a=alpha: remove_background(f, a, clean_edges=False),
            "remove_on": lambda f=frame, a=alpha: remove_background(f, a, clean_edges=True),
        }
        rounds = [{key: median_ms(case, runs) for key, case in cases.items()} for _ in range(3)]  # interleaved
        results[name] = {key: float(np.median([r[key] for r in rounds])) for key in cases}
        results[name]["reference_estimator"] = median_ms(
            lambda f=frame, a=alpha: estimate_foreground_reference(f, a), 2)
        results[name]["band_share"] = round(float(soft_band(alpha8).mean()), 4)
    return results


def feathered(mask: np.ndarray) -> np.ndarray:
    sigma = min(mask.shape) / 240
    return cv2.GaussianBlur(mask.astype(np.float32), (0, 0), sigma)


def errors(foreground: np.ndarray, alpha: np.ndarray, background: np.ndarray) -> dict:
    """Mean foreground and composite errors over the soft band for each way of getting F."""
    alpha8 = alpha_to_uint8(alpha)
    alpha = alpha8.astype(np.float32) / 255  # what the composite blends with
    image = np.clip(alpha[..., None] * foreground + (1 - alpha[..., None]) * background + 0.5, 0, 255).astype(np.uint8)
    band = soft_band(alpha8)
    truth = foreground[band].astype(np.float32)
    used = {"none": image, "fast": estimate_foreground(image, alpha8),
            "reference": np.clip(estimate_foreground_reference(image, alpha) + 0.5, 0, 255).astype(np.uint8)}
    out = {}
    for name, fg in used.items():
        diff = np.abs(fg[band].astype(np.float32) - truth)
        out[name] = {"fg_error": float(diff.mean()), "composite_error": float((diff * alpha[band][:, None]).mean())}
    return out


def accuracy(folder: Path, photos: list[Path], limit: int | None) -> dict:
    rows = {"colour": [], "photo": []}
    for index, (image_path, mask_path) in enumerate(find_pairs(folder)[:limit]):
        image, mask = read_pair(image_path, mask_path)
        alpha = feathered(mask)
        plate = np.empty_like(image)
        plate[:] = SATURATED
        photo = cover(read_image(photos[index % len(photos)]), image.shape[:2])
        rows["colour"].append(errors(image, alpha, plate))
        rows["photo"].append(errors(image, alpha, photo))
    summary = {}
    for background, per_image in rows.items():
        summary[background] = {method: {key: round(float(np.mean([r[method][key] for r in per_image])), 3)
                                        for key in per_image[0][method]} for method in per_image[0]}
    return {"images": len(rows["colour"]), **summary}


def edge_crop(image: np.ndarray, segmenter, path: Path, size: int = 120, zoom: int = 4) -> None:
    """The model's matte, replaced onto a saturated colour without and with estimation, side by side and enlarged,
    where the two differ most (the square of `size` px with the largest summed difference)."""
    alpha = segmenter.mask(image)
    off, on = (replace_background(image, alpha, NEW_BACKGROUND, clean_edges=flag) for flag in (False, True))
    difference = cv2.blur(np.abs(on.astype(np.float32) - off).sum(axis=2), (size, size))
    row, col = np.unravel_index(np.argmax(difference), difference.shape)
    top = int(np.clip(row - size // 2, 0, image.shape[0] - size))
    left = int(np.clip(col - size // 2, 0, image.shape[1] - size))
    gap = np.full((size, 2, 3), 255, np.uint8)
    strip = np.hstack([off[top:top + size, left:left + size], gap, on[top:top + size, left:left + size]])
    strip = cv2.resize(strip, None, fx=zoom, fy=zoom, interpolation=cv2.INTER_NEAREST)
    cv2.imwrite(str(path), cv2.cvtColor(strip, cv2.COLOR_RGB2BGR))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path, help="images/ + masks/, e.g. ../shared/data/people/val-portraits")
    parser.add_argument("--photos", type=Path, help="folder of background photos (default: FOLDER/../val-scenes)")
    parser.add_argument("--limit", type=int, help="score only the first N images")
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--crop", type=Path, help="write the side-by-side crop here (PNG)")
    args = parser.parse_args()

    from segedge.runtime import Segmenter

    segmenter = Segmenter()
    pairs = find_pairs(args.folder)
    image = read_image(pairs[0][0])
    load_before = os.getloadavg()
    costs = timing(image, segmenter, args.runs)
    load_after = os.getloadavg()
    photos = sorted(((args.photos or args.folder.parent / "val-scenes") / "images").iterdir())
    payload = {"machine": machine_info(), "load_average": {"before": load_before, "after": load_after},
               "timing_image": pairs[0][0].name, "ms": costs, "error": accuracy(args.folder, photos, args.limit)}
    if args.crop:
        edge_crop(read_image(pairs[min(1, len(pairs) - 1)][0]), segmenter, args.crop)
        payload["crop"] = args.crop.name
    print_json(payload, args.out)


if __name__ == "__main__":
    main()
