"""What `segedge run --ray` and `segedge serve --ray` share: finding Ray, connecting to a cluster (or starting a
local one), and how many CPUs each model worker takes.

Imported only by those two paths (the [ray] extra), so `import segedge` and every other command never import ray.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

from segedge.errors import SegedgeError, first_line, missing_extra
from segedge.model_files import is_format

log = logging.getLogger("segedge")

# the module each part of Ray needs beside ray itself (ray[data] brings pyarrow, ray[serve] aiohttp)
PARTS = {"data": "pyarrow", "serve": "aiohttp"}


def require_ray(part: str) -> None:
    """A one-line error naming the extra when ray (or the part of it that `part` needs) is not installed."""
    for module in ("ray", PARTS[part]):
        if importlib.util.find_spec(module) is None:
            raise missing_extra(f"ray[{part}]" if module != "ray" else "ray", "ray")


@contextlib.contextmanager
def connected(address: str | None, quiet: bool = False) -> Iterator[bool]:
    """Connected to Ray for the block: the cluster at `address` ("auto": the one on this machine; "ray://...": Ray
    Client), or a new local Ray using this machine's cores, stopped at the end. Yields whether it started a local
    one. When this process is already connected (a notebook, a test), that connection is used and left open."""
    import ray

    if ray.is_initialized():
        yield False
        return
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # a local tool: nothing phones home
    local = address is None
    on_sigterm = signal.getsignal(signal.SIGTERM) if threading.current_thread() is threading.main_thread() else None
    try:
        # "local": a fresh instance even when RAY_ADDRESS or an earlier `ray start` points elsewhere
        ray.init(address="local" if local else address, include_dashboard=False if local else None,
                 logging_level=logging.WARNING, log_to_driver=not quiet)
    except (ConnectionError, ValueError, RuntimeError) as exc:
        raise SegedgeError(f"cannot connect to the Ray cluster at {address}: {first_line(exc)}") from None
    if on_sigterm is not None:  # Ray's core worker put in a handler that kills the process on the spot: SIGTERM
        signal.signal(signal.SIGTERM, on_sigterm)  # unwinds like Ctrl-C again, so the finally blocks clean up
    try:
        yield local
    finally:
        ray.shutdown()


def portable_engine(engine: str | None) -> str | None:
    """A model file as an absolute path (Ray workers do not start in the caller's folder); an embedded model's name
    as it is, for each worker to find in its own installation."""
    return str(Path(engine).absolute()) if engine and Path(engine).is_file() else engine


def cpus_per_worker(workers: int, threads: int | None) -> tuple[float, int]:
    """(CPUs Ray reserves for each model worker, inference threads it runs): the threads asked for, or the
    cluster's CPUs shared out, at most one node's worth; the reservation never exceeds a fair share, so N workers
    always fit even when N is more than the cores (then they take turns within the reserved CPUs)."""
    import ray

    if workers < 1:
        raise SegedgeError(f"{workers} workers: give at least 1")
    total = ray.cluster_resources().get("CPU", 1.0)
    largest_node = max((node["Resources"].get("CPU", 0.0) for node in ray.nodes() if node["Alive"]), default=total)
    share = total / workers
    count = threads or max(1, int(min(share, largest_node)))
    return min(float(count), share, largest_node), count


def gpus_per_worker(engine: str | None, backend: str) -> int:
    """GPUs Ray reserves for each model worker: one when its model runs on a GPU (--backend cuda or tensorrt, or a
    TensorRT engine), else none. Ray shows a worker only the GPUs it reserved (CUDA_VISIBLE_DEVICES), so a GPU
    model in a worker that reserved none would find no GPU; with one, workers never share a GPU."""
    return int(backend in ("cuda", "tensorrt") or (engine is not None and is_format(engine, "tensorrt")))


def warn_if_short_of_gpus(workers: int, gpus: int, available: float) -> bool:
    """Ray makes workers wait, without a word, until their GPUs exist: say so when the cluster has fewer now."""
    short = gpus > 0 and available < workers * gpus
    if short:
        log.warning("WARNING: %d model worker(s) take a GPU each and the Ray cluster has %g now: they wait until it "
                    "has them (an autoscaler may add GPU nodes; Ctrl-C to stop)", workers, available)
    return short
