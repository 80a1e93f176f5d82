"""Eager PyTorch on a CUDA GPU: FP32 vs FP16 autocast vs FP16 channels-last vs torch.compile, per model and batch.

The GPU rows the README's CPU tables cannot give (TensorRT is not installable on the lent machines, so no TensorRT
row is claimed). Timed with CUDA events after a warm-up, median of repeated runs; the JSON names the GPU, driver,
torch and CUDA versions.
    python benchmarks/gpu_eager.py --model default --model runs/gpu/fast/best.pth -o benchmarks/results/gpu.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from segedge.training.checkpoint import load_model

MODES = ("fp32", "fp16", "fp16-channels-last", "fp16-channels-last-compiled")


def prepare(model: torch.nn.Module, mode: str) -> torch.nn.Module:
    model = model.cuda().eval()
    if "channels-last" in mode:
        model = model.to(memory_format=torch.channels_last)
    return torch.compile(model) if mode.endswith("compiled") else model


def time_batches(model, batch: torch.Tensor, fp16: bool, repeats: int = 30) -> float:
    """Median milliseconds per forward pass."""
    with torch.inference_mode(), torch.autocast("cuda", dtype=torch.float16, enabled=fp16):
        for _ in range(10):
            model(batch)
        torch.cuda.synchronize()
        samples = []
        for _ in range(repeats):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            model(batch)
            end.record()
            torch.cuda.synchronize()
            samples.append(start.elapsed_time(end))
    return statistics.median(samples)


def bench_model(path: str, batches: list[int], compiled_batches: list[int]) -> list[dict]:
    rows = []
    for mode in MODES:
        model, spec, _ = load_model(path)
        runnable = prepare(model, mode)
        for size in compiled_batches if mode.endswith("compiled") else batches:
            batch = torch.randn(size, 3, *spec.input_size, device="cuda")
            if "channels-last" in mode:
                batch = batch.contiguous(memory_format=torch.channels_last)
            started = time.perf_counter()
            ms = time_batches(runnable, batch, fp16=mode != "fp32")
            rows.append({"model": path, "input": list(spec.input_size), "mode": mode, "batch": size,
                         "ms_per_batch": round(ms, 3), "images_per_s": round(1000 * size / ms, 1),
                         "wall_s_incl_warmup": round(time.perf_counter() - started, 1)})
            print(json.dumps(rows[-1]), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", required=True, help="checkpoint path or embedded name")
    parser.add_argument("--batch", type=int, action="append", help="batch sizes (default 1, 8, 32)")
    parser.add_argument("--compiled-batch", type=int, action="append", help="batches for torch.compile (1, 32)")
    parser.add_argument("-o", "--output", type=Path, required=True)
    args = parser.parse_args()
    torch.backends.cudnn.benchmark = True
    props = torch.cuda.get_device_properties(0)
    result = {"machine": {"gpu": props.name, "memory_gib": round(props.total_memory / 2**30, 1),
                          "torch": torch.__version__, "cuda": torch.version.cuda,
                          "cudnn": torch.backends.cudnn.version()},
              "rows": [row for model in args.model
                       for row in bench_model(model, args.batch or [1, 8, 32], args.compiled_batch or [1, 32])]}
    args.output.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
