"""Load test of `segedge serve` on localhost: N concurrent clients POST the same real photo for a bounded time.

Records requests/s, p50/p99 latency and errors per (server, workers, clients) setting, with the machine it ran on,
in benchmarks/results/serve_load_<cpu>.json. Each client keeps one HTTP/1.1 connection open, as a real client would.
Servers: `plain` (uvicorn worker processes) and `ray` (`segedge serve --ray`: Ray Serve replicas behind Ray's
proxy, on a local Ray the server starts; its start-up is not timed).

    .venv/bin/python benchmarks/serve_load.py            # 20 s per setting: 1 and 2 workers, 4 and 16 clients, both
    .venv/bin/python benchmarks/serve_load.py --seconds 5 --clients 4 --workers 1 --servers ray
"""

from __future__ import annotations

import argparse
import http.client
import importlib.metadata
import json
import os
import statistics
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

from segedge.bench import machine_info
from segedge.cpu import cpu_slug
from segedge.serve.local import local_server

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results"
PHOTOS = REPO.parent / "shared" / "data" / "people" / "val-portraits" / "images"


def client_loop(url: str, body: bytes, query: str, stop_at: float, latencies: list, errors: list) -> None:
    """POST until stop_at; a request that fails counts as an error and the connection is opened again."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    while time.monotonic() < stop_at:
        start = time.perf_counter()
        try:
            connection.request("POST", f"/segment?{query}", body, {"Content-Type": "image/jpeg"})
            reply = connection.getresponse()
            reply.read()
            if reply.status != 200:
                errors.append(f"HTTP {reply.status}")
                continue
            latencies.append(time.perf_counter() - start)
        except (OSError, http.client.HTTPException) as exc:
            errors.append(type(exc).__name__)
            connection.close()
            connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    connection.close()


def load(url: str, body: bytes, query: str, clients: int, seconds: float) -> dict:
    latencies, errors = [], []  # list.append is atomic under the GIL
    stop_at = time.monotonic() + seconds
    threads = [threading.Thread(target=client_loop, args=(url, body, query, stop_at, latencies, errors))
               for _ in range(clients)]
    start = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - start  # includes the requests still in flight at stop_at
    ms = sorted(1000 * value for value in latencies)
    return {"clients": clients, "seconds": round(elapsed, 1), "requests": len(ms), "errors": len(errors),
            "error_kinds": sorted(set(errors)), "requests_per_s": round(len(ms) / elapsed, 2),
            "p50_ms": round(statistics.median(ms), 1) if ms else None,
            "p99_ms": round(ms[min(len(ms) - 1, int(0.99 * len(ms)))], 1) if ms else None}


def versions(*packages: str) -> dict:
    """Installed versions, from metadata (nothing imported)."""
    found = {}
    for package in packages:
        try:
            found[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            pass
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="load time per setting")
    parser.add_argument("--clients", type=int, nargs="+", default=[4, 16])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--servers", nargs="+", choices=("plain", "ray"), default=["plain", "ray"])
    parser.add_argument("--effect", default="remove")
    parser.add_argument("--engine", default="default")
    parser.add_argument("--photo", type=Path, default=None, help="default: the first val-portraits image")
    args = parser.parse_args()
    photo = args.photo or sorted(PHOTOS.iterdir())[0]
    body = photo.read_bytes()
    query = f"effect={args.effect}"
    rows = []
    for server in args.servers:
        for workers in args.workers:
            flags = ("--ray",) if server == "ray" else ()
            with local_server("--engine", args.engine, "--workers", workers, *flags, timeout=300) as url:
                load(url, body, query, max(args.clients), min(3.0, args.seconds))  # warm-up: each worker's first run
                for clients in args.clients:
                    row = {"server": server, "workers": workers, "load_average_before": round(os.getloadavg()[0], 2),
                           **load(url, body, query, clients, args.seconds)}
                    print(json.dumps(row))
                    rows.append(row)
    out = RESULTS / f"serve_load_{cpu_slug()}.json"
    out.write_text(json.dumps({"machine": {**machine_info(), **versions("uvicorn", "ray")}, "engine": args.engine,
                               "effect": args.effect, "photo": photo.name, "photo_bytes": len(body), "rows": rows},
                              indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
