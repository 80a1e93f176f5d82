"""Where the time goes in the video pipeline: the real streaming loop, run once sequentially (each stage timed on
its own) and once threaded, in alternating rounds."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

PIPELINE_ROUNDS = 3  # sequential and threaded passes alternate, so machine drift hits both alike
STAGES = ("decode", "preprocess", "inference", "refine+composite", "encode")


def bench_pipeline(engine: Path | None, video: Path, threads: int | None = None, effect: str = "blur") -> dict:
    """Where the time goes in the video pipeline: each stage timed on its own (sequential pass), then the real
    threaded pipeline's frames/s against model-only frames/s, in alternating rounds (medians reported)."""
    from segedge.effects import Effect
    from segedge.runtime import Segmenter
    from segedge.stream.sinks import video_codec

    segmenter = Segmenter(engine, "auto", threads)
    stages = dict.fromkeys(STAGES, 0.0)
    model_fps, pipeline_fps = [], []
    with tempfile.TemporaryDirectory(prefix="segedge-pipeline-") as workdir:
        for _ in range(PIPELINE_ROUNDS):
            sequential = _pass(segmenter, video, Path(workdir) / f"sequential{video.suffix}", Effect(effect), False)
            stages = {k: stages[k] + v for k, v in _bench_stages(sequential.stage_seconds).items()}
            model_fps.append(sequential.frames / sequential.stage_seconds["inference"])
            threaded = _pass(segmenter, video, Path(workdir) / f"threaded{video.suffix}", Effect(effect), True)
            pipeline_fps.append(threaded.fps)
    frames = sequential.frames
    total, all_frames = sum(stages.values()), frames * PIPELINE_ROUNDS
    return {
        "video": str(video), "frames": frames, "rounds": PIPELINE_ROUNDS, "model": segmenter.backend.describe(),
        "encoder": video_codec(video.suffix.lower()),  # the passes write through segedge run's own VideoWriter
        "stage_ms_per_frame": {k: round(1000 * v / all_frames, 2) for k, v in stages.items()},
        "stage_share": {k: round(v / total, 3) for k, v in stages.items()},
        "sequential_fps": round(all_frames / total, 1), "model_only_fps": round(float(np.median(model_fps)), 1),
        "pipeline_fps": round(float(np.median(pipeline_fps)), 1),
        "pipeline_vs_model": round(float(np.median(np.divide(pipeline_fps, model_fps))), 3),
        "rounds_fps": [{"model_only": round(m, 1), "pipeline": round(q, 1)} for m, q in zip(model_fps, pipeline_fps,
                                                                                           strict=True)],
    }


def _pass(segmenter, video: Path, out: Path, effect, threaded: bool):
    """One run of the streaming loop over the whole video, exactly as `segedge run` does it."""
    from segedge.video import process_video

    return process_video(segmenter, video, out, effect, quiet=True, threaded=threaded)


def _bench_stages(seconds: dict[str, float]) -> dict[str, float]:
    """The loop's stages as the bench reports them (refine and composite together, as before the streaming core)."""
    merged = {k: v for k, v in seconds.items() if k not in ("refine", "composite")}
    merged["refine+composite"] = seconds["refine"] + seconds["composite"]
    return {k: merged[k] for k in STAGES}


def format_pipeline(result: dict) -> str:
    lines = [f"video pipeline on {result['video']} ({result['frames']} frames, {result['model']}, encoder "
             f"{result['encoder']})"]
    for stage, ms in result["stage_ms_per_frame"].items():
        lines.append(f"  {stage:<17} {ms:8.2f} ms/frame  {100 * result['stage_share'][stage]:5.1f}%")
    lines.append(f"  threaded pipeline {result['pipeline_fps']} frames/s vs model alone {result['model_only_fps']} "
                 f"frames/s ({100 * result['pipeline_vs_model']:.0f}%)")
    return "\n".join(lines)
