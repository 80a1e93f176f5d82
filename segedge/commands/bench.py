import logging
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer

NAME = "bench"
HELP = ("Latency (p50/p90/p99), throughput, size, memory and accuracy of each backend against eager PyTorch, "
        "measured in one run; table, JSON, CSV and plot. --pipeline VIDEO times the whole video pipeline.")
EXAMPLES = """Examples:\n\n
  segedge bench                                           # default model, every backend (eager torch with [train])\n\n
  segedge bench --checkpoint runs/mnv2/best.pth --data ../shared/data/people/val --json bench.json --plot bench.png\n\n
  segedge bench --engine model.onnx --engine model.trt --backends onnxruntime,tensorrt --batch 8\n\n
  segedge bench --pipeline clip.mp4
"""


def command(
    checkpoint: Annotated[Path | None, typer.Option(help="Training checkpoint or an embedded name (default, fast): "
                                                   "enables eager torch and exports the ONNX variants on the fly.")
                          ] = None,
    engine: Annotated[list[Path] | None, typer.Option(help="Model files (.onnx, .fp16.onnx, .int8.onnx, .trt) or "
                                                     "embedded names; repeatable.")] = None,
    backends: Annotated[str | None, typer.Option(help="Comma-separated: torch, torch-fp16 (CUDA), "
                                                 "torch-channels-last, torch-compile, onnxruntime, onnxruntime-fp16, "
                                                 "onnxruntime-int8, tensorrt. Default: all but torch-compile.")]
    = None,
    size: Annotated[int | None, typer.Option(help="Square input size (default: the model's).")] = None,
    batch: Annotated[int, typer.Option(help="Images per call.")] = 1,
    runs: Annotated[int, typer.Option(help="Timed runs per backend.")] = 50,
    warmup: Annotated[int, typer.Option(help="Untimed warm-up runs.")] = 5,
    threads: Annotated[int | None, typer.Option(help="CPU threads (torch and onnxruntime alike).")] = None,
    device: Annotated[str, typer.Option(help="auto (CUDA when present), cpu or cuda: where torch and onnxruntime "
                                        "run.")] = "auto",
    data: Annotated[Path | None, typer.Option(help="DIR with images/ + masks/: accuracy vs eager and vs ground "
                                              "truth, INT8 calibration.")] = None,
    json_path: Annotated[Path | None, typer.Option("--json", help="Write rows + machine info as JSON.")] = None,
    csv_path: Annotated[Path | None, typer.Option("--csv", help="Write rows as CSV.")] = None,
    plot: Annotated[Path | None, typer.Option(help="Write a PNG bar chart.")] = None,
    pipeline: Annotated[Path | None, typer.Option(help="Also time the end-to-end video pipeline on VIDEO.")] = None,
) -> None:
    from segedge.bench import (  # here, not at module level: it costs every other command ~50 ms of start-up
        DEFAULT_BACKENDS,
        BenchOptions,
        check_output_paths,
        format_pipeline,
        format_table,
        run_bench,
        write_csv,
        write_json,
        write_plot,
    )

    chosen = DEFAULT_BACKENDS if backends is None else tuple(b.strip() for b in backends.split(",") if b.strip())
    options = BenchOptions(checkpoint=checkpoint, engines=list(engine or []), backends=chosen, size=size,
                           batch=batch, runs=runs, warmup=warmup, threads=threads, device=device, data=data,
                           pipeline=pipeline)
    check_output_paths(json_path, csv_path, plot)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")  # loud CPU-fallback warnings
    rows, pipeline_result = run_bench(options, echo=lambda line: typer.echo(line, err=True))
    typer.echo(format_table(rows))
    extra = {"options": asdict(options), **({"pipeline": pipeline_result} if pipeline_result else {})}
    if pipeline_result:
        typer.echo(format_pipeline(pipeline_result))
    if json_path:
        write_json(rows, json_path, extra)
    if csv_path:
        write_csv(rows, csv_path)
    if plot:
        write_plot(rows, plot)
