"""Images/s of plain `segedge run` on a folder against `segedge run --ray` with 1 and 2 actors, on the same photos.

The settings alternate within each round (plain, ray x1, ray x2, then the next round in another order), so load
from other jobs on a shared machine falls on all of them alike; compare ratios within one run. Ray starts once, here,
as a cluster would already be running: each --ray time includes starting its actors and loading their models, not
starting Ray (recorded on its own). Every --ray output is checked byte for byte against the plain run's.

    .venv/bin/python benchmarks/ray_batch.py                 # 200 train photos, 2 rounds
    .venv/bin/python benchmarks/ray_batch.py --images 40 --rounds 1

Writes benchmarks/results/ray_batch_<cpu>.json.
"""

from __future__ import annotations

import argparse
import filecmp
import json
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path

from segedge.bench import machine_info
from segedge.cpu import cpu_slug
from segedge.ray_batch import run_on_ray
from segedge.runner import RunOptions, run

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results"
PHOTOS = REPO.parent / "shared" / "data" / "people" / "train" / "images"
SETTINGS = ("plain", "ray x1", "ray x2")


def timed_run(setting: str, photos: Path, out: Path, engine: str) -> dict:
    options = RunOptions(input=str(photos), output=str(out), engine=engine, quiet=True)
    load_before = os.getloadavg()[0]
    start = time.perf_counter()
    if setting == "plain":
        run(options)
        failed = 0
    else:
        failed = len(run_on_ray(options, actors=int(setting[-1])).failed)
    seconds = time.perf_counter() - start
    count = len(list(out.iterdir()))
    return {"setting": setting, "images": count, "failed": failed, "seconds": round(seconds, 2),
            "images_per_s": round(count / seconds, 2), "load_average_before": round(load_before, 2),
            "load_average_after": round(os.getloadavg()[0], 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--engine", default="default")
    args = parser.parse_args()
    import ray

    logging.basicConfig(level=logging.WARNING)
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    work = Path(tempfile.mkdtemp(prefix="ray_batch_"))
    photos = work / "photos"
    photos.mkdir()
    for source in sorted(PHOTOS.iterdir())[:args.images]:
        shutil.copy(source, photos / source.name)
    start = time.perf_counter()
    ray.init(address="local", include_dashboard=False, log_to_driver=False)
    ray_start = time.perf_counter() - start
    rows = []
    try:
        for round_ in range(args.rounds):
            order = SETTINGS[round_ % 3:] + SETTINGS[:round_ % 3]
            for setting in order:
                out = work / f"out_{setting.replace(' ', '')}"
                shutil.rmtree(out, ignore_errors=True)
                row = {"round": round_ + 1, **timed_run(setting, photos, out, args.engine)}
                if setting != "plain" and (work / "out_plain").is_dir():
                    names = sorted(p.name for p in (work / "out_plain").iterdir())
                    same, _, _ = filecmp.cmpfiles(work / "out_plain", out, names, shallow=False)
                    row["identical_to_plain"] = len(same) == len(names)
                print(json.dumps(row), flush=True)
                rows.append(row)
    finally:
        ray.shutdown()
        shutil.rmtree(work)
    summary = {setting: round(sum(r["images_per_s"] for r in rows if r["setting"] == setting) /
                              max(1, sum(r["setting"] == setting for r in rows)), 2) for setting in SETTINGS}
    out = RESULTS / f"ray_batch_{cpu_slug()}.json"
    out.write_text(json.dumps({"machine": {**machine_info(), "ray": ray.__version__}, "engine": args.engine,
                               "photos": f"first {args.images} of train/images", "ray_start_s": round(ray_start, 2),
                               "mean_images_per_s": summary, "rows": rows}, indent=2) + "\n")
    print(f"mean images/s: {summary}; Ray start-up {ray_start:.1f} s; wrote {out}")


if __name__ == "__main__":
    main()
