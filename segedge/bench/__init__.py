"""`segedge bench`: latency, throughput, size, memory and accuracy of each backend against eager PyTorch,
measured in one run on the same inputs (warm-up first; GPU work synchronised before the clock stops).

options (what to measure) -> candidates (the model file of each row) -> timing (turns, peak memory) and accuracy
(segedge.scoring) -> run (rows) -> report (table, JSON, CSV, plot); pipeline times the video pipeline's stages.
"""

from segedge.bench.accuracy import ACCURACY_IMAGES, AccuracySet
from segedge.bench.candidates import Candidates
from segedge.bench.options import (
    BACKENDS,
    DEFAULT_BACKENDS,
    TORCH_VARIANTS,
    BenchOptions,
    check_options,
    check_output_paths,
    resolve_options,
)
from segedge.bench.pipeline import STAGES, bench_pipeline, format_pipeline
from segedge.bench.report import Row, format_table, write_csv, write_json, write_plot
from segedge.bench.run import run_bench
from segedge.bench.timing import TURN_PAUSE_S, TURN_RUNS, PeakMemory, machine_info, time_in_turns

__all__ = ["ACCURACY_IMAGES", "BACKENDS", "DEFAULT_BACKENDS", "STAGES", "TORCH_VARIANTS", "TURN_PAUSE_S", "TURN_RUNS",
           "AccuracySet", "BenchOptions", "Candidates", "PeakMemory", "Row", "bench_pipeline", "check_options",
           "check_output_paths", "format_pipeline", "format_table", "machine_info", "run_bench", "time_in_turns",
           "resolve_options", "write_csv", "write_json", "write_plot"]
