"""Pack ../shared/data/people for a lent GPU machine: each call there carries at most 64 MiB with the working tree.

Images are written at 320x320 (the trainer's own first step resizes to the model size, so nothing is lost for models
up to 320) as WebP, masks as 1-bit PNG, then split into two gzipped halves (train half A; train half B + the three
val folders) that fit one call each beside the ~20 MiB tree and the albumentations wheels (.whl/, see the device
tool's README). The machine keeps /tmp between calls while warm (30 s), so call 1 unpacks half A and call 2 half B:

    .venv/bin/python training/recipes/gpu_pack.py            # -> .gpu/{a,b}.tgz, .gpu/setup.sh (git-ignored)
    # call 1 (carry .gpu/a.tgz .gpu/setup.sh .whl): bash .gpu/setup.sh, then a 1-epoch smoke run of gpu_round.sh
    # call 2 (carry .gpu/b.tgz .gpu/setup.sh .whl), at once: bash .gpu/setup.sh; rm -rf /tmp/runs/{ft,scratch};
    #   PEOPLE=/tmp/people RUN_ROOT=/tmp/runs ... bash training/recipes/gpu_round.sh; slim best.pth files into $OUT
Environment there: PYTHONPATH=/tmp/pkg:/tmp/site PATH=/tmp/bin:$PATH NO_ALBUMENTATIONS_UPDATE=1 (setup.sh makes a
`segedge` command from the checkout; `python3 -P` keeps the checkout's own segedge/ from shadowing it).
--init FILE... adds start weights (a slim fast.pth, ImageNet weights saved as fp16: <8 MiB in all) to half A's init/
folder, copied to /tmp/init there.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import tarfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[2]
HALF_A_BYTES = 29.5e6
SETUP = Path(__file__).with_name("gpu_setup.sh")


def pack_pair(job: tuple[Path, Path, Path, int, int]) -> int:
    image_path, mask_path, out_dir, quality, size = job
    image = cv2.imread(str(image_path), cv2.IMREAD_COLOR)
    mask = cv2.imread(str(mask_path), cv2.IMREAD_GRAYSCALE)
    if image is None or mask is None:
        return 0
    image = cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)
    mask = cv2.resize(((mask > 127) * 255).astype(np.uint8), (size, size), interpolation=cv2.INTER_NEAREST)
    for kind in ("images", "masks"):
        (out_dir / kind).mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(out_dir / "images" / f"{image_path.stem}.webp"), image, [cv2.IMWRITE_WEBP_QUALITY, quality])
    bilevel = [cv2.IMWRITE_PNG_COMPRESSION, 9, cv2.IMWRITE_PNG_BILEVEL, 1]
    cv2.imwrite(str(out_dir / "masks" / f"{image_path.stem}.png"), mask, bilevel)
    return 1


def split_halves(sizes: dict[str, int], half_a_bytes: float) -> dict[str, str]:
    """Stem -> "a" or "b". Hash order spreads every kind of image over both halves; A fills to its byte budget."""
    halves, filled = {}, 0
    for stem in sorted(sizes, key=lambda s: hashlib.md5(s.encode()).hexdigest()):
        fits = filled + sizes[stem] < half_a_bytes
        filled += sizes[stem] if fits else 0
        halves[stem] = "a" if fits else "b"
    return halves


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=Path, default=ROOT.parent / "shared" / "data" / "people")
    parser.add_argument("--out", type=Path, default=ROOT / ".gpu")
    parser.add_argument("--init", type=Path, nargs="*", default=[])
    parser.add_argument("--size", type=int, default=320, help="pack at the largest input a run will train at")
    parser.add_argument("--quality", type=int, default=88, help="WebP quality of the training images")
    parser.add_argument("--one", action="store_true", help="everything in a.tgz (small enough for one call)")
    args = parser.parse_args()
    stage = args.out / "stage"
    shutil.rmtree(stage, ignore_errors=True)
    jobs = []
    for folder, quality in (("train", args.quality), ("val", 85), ("val-portraits", 85), ("val-scenes", 85)):
        masks = {p.stem: p for p in (args.people / folder / "masks").iterdir()}
        jobs += [(image, masks[image.stem], stage / folder, quality, args.size)
                 for image in sorted((args.people / folder / "images").iterdir()) if image.stem in masks]
    with ProcessPoolExecutor() as pool:
        print(f"packed {sum(pool.map(pack_pair, jobs, chunksize=32))} pairs")
    train = stage / "train"
    sizes = {p.stem: p.stat().st_size + (train / "masks" / f"{p.stem}.png").stat().st_size
             for p in (train / "images").iterdir()}
    for stem, name in split_halves(sizes, float("inf") if args.one else HALF_A_BYTES).items():
        half = stage / name / "train"
        for kind, suffix in (("images", ".webp"), ("masks", ".png")):
            (half / kind).mkdir(parents=True, exist_ok=True)
            (train / kind / f"{stem}{suffix}").rename(half / kind / f"{stem}{suffix}")
    for folder in ("val", "val-portraits", "val-scenes"):
        (stage / folder).rename(stage / ("a" if args.one else "b") / folder)
    (stage / "a" / "init").mkdir()  # half A has the room (call 1 carries ~56 MiB, call 2 ~63)
    for path in args.init:
        shutil.copy(path, stage / "a" / "init" / path.name)
    for half in ("a",) if args.one else ("a", "b"):
        with tarfile.open(args.out / f"{half}.tgz", "w:gz") as tar:
            tar.add(stage / half, arcname=half)
        print(f"{args.out / half}.tgz: {(args.out / f'{half}.tgz').stat().st_size / 2**20:.1f} MiB")
    shutil.copy(SETUP, args.out / "setup.sh")
    shutil.rmtree(stage)


if __name__ == "__main__":
    main()
