"""Where the time goes in the video pipeline: each stage timed on its own, then the real threaded pipeline."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

from segedge.errors import SegedgeError
from segedge.preprocess import to_model_input, to_probabilities

PIPELINE_ROUNDS = 3  # sequential and threaded passes alternate, so machine drift hits both alike
STAGES = ("decode", "preprocess", "inference", "refine+composite", "encode")


def bench_pipeline(engine: Path | None, video: Path, threads: int | None = None, effect: str = "blur") -> dict:
    """Where the time goes in the video pipeline: each stage timed on its own (sequential pass), then the real
    threaded pipeline's frames/s against model-only frames/s, in alternating rounds (medians reported)."""
    from segedge.runtime import Segmenter
    from segedge.video import process_video

    segmenter = Segmenter(engine, "auto", threads)
    stages = dict.fromkeys(STAGES, 0.0)
    model_fps, pipeline_fps = [], []
    with tempfile.TemporaryDirectory(prefix="segedge-pipeline-") as workdir:
        for _ in range(PIPELINE_ROUNDS):
            seconds, frames = _sequential_pass(segmenter, video, Path(workdir) / f"out{video.suffix}", effect)
            stages = {k: stages[k] + seconds[k] for k in STAGES}
            model_fps.append(frames / seconds["inference"])
            pipeline_fps.append(process_video(segmenter, video, Path(workdir) / f"threaded{video.suffix}",
                                              effect=effect, quiet=True).fps)
    total, all_frames = sum(stages.values()), frames * PIPELINE_ROUNDS
    return {
        "video": str(video), "frames": frames, "rounds": PIPELINE_ROUNDS, "model": segmenter.backend.describe(),
        "stage_ms_per_frame": {k: round(1000 * v / all_frames, 2) for k, v in stages.items()},
        "stage_share": {k: round(v / total, 3) for k, v in stages.items()},
        "sequential_fps": round(all_frames / total, 1), "model_only_fps": round(float(np.median(model_fps)), 1),
        "pipeline_fps": round(float(np.median(pipeline_fps)), 1),
        "pipeline_vs_model": round(float(np.median(np.divide(pipeline_fps, model_fps))), 3),
        "rounds_fps": [{"model_only": round(m, 1), "pipeline": round(q, 1)} for m, q in zip(model_fps, pipeline_fps,
                                                                                           strict=True)],
    }


def _sequential_pass(segmenter, video: Path, out_path: Path, effect: str) -> tuple[dict[str, float], int]:
    """Seconds spent in each stage over the whole video with the stages run one after another, and the frame count."""
    import av
    from av.video.reformatter import VideoReformatter

    from segedge.effects import apply_effect
    from segedge.media import upright
    from segedge.runtime import model_size

    stages, frames = dict.fromkeys(STAGES, 0.0), 0
    with av.open(str(video)) as source, av.open(str(out_path), "w") as sink:
        stream = None
        decoder, reformatter = source.decode(video=0), VideoReformatter()
        while True:
            started = time.perf_counter()
            frame = next(decoder, None)
            if frame is None:
                break
            rgb = upright(frame, reformatter)
            stages["decode"] += time.perf_counter() - started
            started = time.perf_counter()
            tensor = to_model_input(rgb, segmenter.spec, model_size(rgb.shape[:2], segmenter.spec))
            stages["preprocess"] += time.perf_counter() - started
            started = time.perf_counter()
            output = segmenter.backend.infer(tensor)[0, 0]
            stages["inference"] += time.perf_counter() - started
            started = time.perf_counter()
            prob = to_probabilities(output, segmenter.spec)
            image = apply_effect(rgb, segmenter.to_matte(prob, rgb), effect)
            stages["refine+composite"] += time.perf_counter() - started
            started = time.perf_counter()
            if stream is None:
                stream = sink.add_stream("libx264", rate=30)
                stream.width, stream.height, stream.pix_fmt = rgb.shape[1] // 2 * 2, rgb.shape[0] // 2 * 2, "yuv420p"
            sink.mux(stream.encode(av.VideoFrame.from_ndarray(
                np.ascontiguousarray(image[:stream.height, :stream.width]), format="rgb24")))
            stages["encode"] += time.perf_counter() - started
            frames += 1
        if stream is not None:
            sink.mux(stream.encode(None))
    if frames == 0:
        raise SegedgeError(f"video {video} has no frames")
    return stages, frames


def format_pipeline(result: dict) -> str:
    lines = [f"video pipeline on {result['video']} ({result['frames']} frames, {result['model']})"]
    for stage, ms in result["stage_ms_per_frame"].items():
        lines.append(f"  {stage:<17} {ms:8.2f} ms/frame  {100 * result['stage_share'][stage]:5.1f}%")
    lines.append(f"  threaded pipeline {result['pipeline_fps']} frames/s vs model alone {result['model_only_fps']} "
                 f"frames/s ({100 * result['pipeline_vs_model']:.0f}%)")
    return "\n".join(lines)
