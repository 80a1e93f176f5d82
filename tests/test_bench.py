"""`segedge bench` end to end on the tiny model: every output file is valid; numbers are never asserted as timings."""

import csv
import json
import subprocess
import sys

import pytest

KEYS = {"backend", "precision", "device", "input", "batch", "p50_ms", "p90_ms", "p99_ms", "fps",
        "speedup_vs_eager", "iou_vs_eager", "size_mb"}


@pytest.fixture(scope="module")
def bench_run(tiny_checkpoint, tiny_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    result = subprocess.run(
        [sys.executable, "-m", "segedge.cli", "bench", "--checkpoint", str(tiny_checkpoint), "--data",
         str(tiny_data / "val"), "--runs", "2", "--warmup", "1", "--threads", "1", "--json", str(out / "b.json"),
         "--csv", str(out / "b.csv"), "--plot", str(out / "b.png")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return out, result


def test_json_rows_have_the_documented_keys(bench_run):
    out, _ = bench_run
    payload = json.loads((out / "b.json").read_text())
    assert {"cpu", "cores", "python", "onnxruntime"} <= payload["machine"].keys()
    rows = {row["backend"]: row for row in payload["rows"]}
    assert set(rows) == {"torch", "torch-fp16", "torch-channels-last", "onnxruntime", "onnxruntime-fp16",
                         "onnxruntime-int8", "tensorrt"}
    for name in ("torch", "torch-channels-last", "onnxruntime", "onnxruntime-fp16", "onnxruntime-int8"):
        row = rows[name]
        assert KEYS <= row.keys() and row["status"] == "ok"
        assert 0 < row["p50_ms"] <= row["p90_ms"] <= row["p99_ms"]
        assert row["speedup_vs_eager"] > 0 and 0.0 <= row["iou_vs_eager"] <= 1.0
        assert row["input"] == "1x3x64x64" and row["size_mb"] > 0
    assert rows["torch"]["speedup_vs_eager"] == 1.0 and rows["torch"]["iou_vs_eager"] == 1.0
    assert rows["onnxruntime-int8"]["precision"] == "int8" and rows["onnxruntime-fp16"]["precision"] == "fp16"
    assert rows["torch-channels-last"]["iou_vs_eager"] > 0.99  # same weights, another memory layout


def test_fp16_eager_torch_is_skipped_without_cuda(bench_run):
    import torch

    if torch.cuda.is_available():
        pytest.skip("CUDA is available here: fp16 eager torch runs")
    out, _ = bench_run
    row = next(r for r in json.loads((out / "b.json").read_text())["rows"] if r["backend"] == "torch-fp16")
    assert row["status"] == "skipped: fp16 eager torch needs a CUDA GPU"


def test_missing_backend_is_skipped_not_an_error(bench_run):
    out, result = bench_run
    try:
        import tensorrt  # noqa: F401

        pytest.skip("TensorRT is installed here")
    except ImportError:
        pass
    tensorrt = next(r for r in json.loads((out / "b.json").read_text())["rows"] if r["backend"] == "tensorrt")
    assert tensorrt["status"].startswith("skipped:") and "tensorrt" in tensorrt["status"]
    assert "Not measured:" in result.stdout


def test_csv_and_plot_are_written(bench_run):
    out, result = bench_run
    with open(out / "b.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 7 and KEYS <= rows[0].keys()
    assert (out / "b.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "Format" in result.stdout and "Speedup" in result.stdout


def test_pipeline_stage_shares_add_up(tiny_onnx, tmp_path):
    import shutil

    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg CLI needed to make the test video")
    video = tmp_path / "clip.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc=size=96x64:rate=10:duration=1",
                    "-pix_fmt", "yuv420p", str(video)], check=True)
    from segedge.bench import bench_pipeline

    result = bench_pipeline(tiny_onnx, video)
    assert result["frames"] == 10
    assert sum(result["stage_share"].values()) == pytest.approx(1.0, abs=0.01)
    assert result["pipeline_fps"] > 0 and result["model_only_fps"] > 0
    rounds = result["rounds_fps"]
    assert len(rounds) == result["rounds"] >= 2  # sequential and threaded passes alternate
    ratios = sorted(r["pipeline"] / r["model_only"] for r in rounds)
    assert result["pipeline_vs_model"] == pytest.approx(ratios[len(ratios) // 2], abs=1e-3)


def test_a_broken_model_fails_its_row_not_the_run(tiny_onnx, tmp_path):
    broken = tmp_path / "tiny.int8.onnx"
    broken.write_bytes(b"not an onnx file")
    result = subprocess.run(
        [sys.executable, "-m", "segedge.cli", "bench", "--engine", str(tiny_onnx), "--engine", str(broken),
         "--backends", "onnxruntime,onnxruntime-int8", "--runs", "2", "--warmup", "0", "--json",
         str(tmp_path / "b.json")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    rows = {row["backend"]: row for row in json.loads((tmp_path / "b.json").read_text())["rows"]}
    assert rows["onnxruntime"]["status"] == "ok"
    assert rows["onnxruntime-int8"]["status"].startswith("failed:") and "tiny.int8.onnx" in result.stdout


@pytest.mark.parametrize("args, message", [
    (["--backends", "onnxruntime,coreml"], "unknown backend coreml"),
    (["--runs", "0"], "--runs 0 must be at least 1"),
    (["--json", "/no/such/folder/b.json"], "folder /no/such/folder does not exist"),
])
def test_bad_options_are_one_line_errors(tiny_onnx, args, message):
    result = subprocess.run([sys.executable, "-m", "segedge.cli", "bench", "--engine", str(tiny_onnx), *args],
                            capture_output=True, text=True)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert message in result.stderr.strip().splitlines()[-1]


@pytest.mark.slow
def test_compiled_torch_matches_eager(tiny_checkpoint, tiny_data):
    from segedge.bench import BenchOptions, run_bench

    rows, _ = run_bench(BenchOptions(checkpoint=tiny_checkpoint, backends=("torch", "torch-compile"), runs=2,
                                     warmup=1, threads=2, data=tiny_data / "val"), echo=lambda line: None)
    compiled = next(r for r in rows if r.backend == "torch-compile")
    assert compiled.status == "ok" and compiled.iou_vs_eager > 0.99 and compiled.speedup_vs_eager > 0


def test_backends_take_turns_so_machine_drift_hits_them_alike():
    from segedge.bench import TURN_RUNS, time_in_turns

    order = []

    def broken():
        order.append("c")
        if order.count("c") > 1:
            raise RuntimeError("device lost")

    calls = {"a": lambda: order.append("a"), "b": lambda: order.append("b"), "c": broken}
    times, errors = time_in_turns(calls, runs=2 * TURN_RUNS)
    turn = TURN_RUNS + 1  # one untimed call, then the timed ones
    assert order == ["a"] * turn + ["b"] * turn + ["c", "c"] + ["a"] * turn + ["b"] * turn
    assert {name: len(t) for name, t in times.items()} == {"a": 2 * TURN_RUNS, "b": 2 * TURN_RUNS}
    assert list(errors) == ["c"] and "device lost" in str(errors["c"])


def test_pipeline_bench_encodes_with_the_settings_of_segedge_run(tiny_onnx, tmp_path, monkeypatch):
    """bench --pipeline's encode stage must cost what `segedge run`'s does: both open their video stream through
    the one definition, with the same options."""
    from helpers import make_video

    from segedge.bench import bench_pipeline
    from segedge.runner import RunOptions, run
    from segedge.stream import sinks

    opened, video_stream = [], sinks.video_stream

    def spy(*args, **kwargs):
        stream = video_stream(*args, **kwargs)
        opened.append((stream.codec_context.name, dict(stream.options)))
        return stream

    monkeypatch.setattr(sinks, "video_stream", spy)
    video = make_video(tmp_path / "clip.mp4", seconds=0.5)
    result = bench_pipeline(tiny_onnx, video)
    run(RunOptions(str(video), str(tmp_path / "out.mp4"), engine=str(tiny_onnx), quiet=True))
    assert len(opened) == 2 * result["rounds"] + 1
    assert all(settings == ("libx264", sinks.X264_OPTIONS) for settings in opened)
    assert result["encoder"] == "libx264 (crf 18 preset veryfast)"
