import logging
from pathlib import Path
from typing import Annotated

import typer

from segedge.effects import DEFAULT_BLUR
from segedge.errors import SegedgeError

NAME = "run"
HELP = ("Blur, remove or replace the background (or write the mask) of an image, a folder or glob of images, "
        "a video (audio kept) or a webcam, with any exported model or the embedded default.")
EXAMPLES = """Examples:\n\n
  segedge run photo.jpg                                   # -> photo_blur.jpg (embedded default model)\n\n
  segedge run photo.jpg --effect remove                   # -> photo_remove.png with alpha\n\n
  segedge run clip.mp4 --effect replace --background beach.jpg -o out.mp4\n\n
  segedge run photos/ --effect mask --engine model.int8.onnx   # -> photos_mask/\n\n
  segedge run 0 -o webcam.mp4 --engine model.trt --backend tensorrt\n\n
  segedge run 0 --camera-size 1280x720 --camera-fps 30 --virtual-cam --preview   # video calls\n\n
  segedge run clip.mp4 --live --preview                   # a file played as a camera\n\n
  segedge run photos/ --ray --actors 4 -o out/            # Ray Data on a local Ray (pip install 'segedge[ray]')\n\n
  segedge run list.txt --ray --address auto -o /shared/out/   # an existing cluster; rerun to resume\n\n
  segedge run s3://bucket/photos/ --ray --backend cuda -o s3://bucket/out/   # any pyarrow URI; a GPU per actor
"""


def command(
    input: Annotated[str, typer.Argument(help="Image, folder or glob of images, video file, or webcam index (0).")],
    output: Annotated[str | None, typer.Option("-o", "--output", help="Output file/folder (default: beside "
                                                "the input, e.g. clip_blur.mp4).")] = None,
    engine: Annotated[Path | None, typer.Option(help=".onnx, .trt/.engine, .pth, or an embedded model by name: "
                                                "default, default-int8, fast, fast-int8 (default: default; fast for a "
                                                "webcam or --live).")] = None,
    effect: Annotated[str, typer.Option(help="blur, remove (PNG with alpha; video: .webm keeps alpha, other "
                                        "containers get a green screen), replace or mask.")] = "blur",
    background: Annotated[str | None, typer.Option(help="Image or colour (green, #00b140, 0,177,64) for "
                                                    "replace, and for remove in video.")] = None,
    backend: Annotated[str, typer.Option(help="auto, cpu, cuda or tensorrt.")] = "auto",
    threshold: Annotated[float | None, typer.Option(help="Matte 50% point (default: the model's).")] = None,
    smooth: Annotated[float, typer.Option(help="Temporal smoothing of video masks in [0, 1); 0 = off.")] = 0.5,
    blur_strength: Annotated[int, typer.Option(help="Background blur radius in pixels.")] = DEFAULT_BLUR,
    clean_edges: Annotated[bool | None, typer.Option("--clean-edges/--no-clean-edges",
                                                     help="remove/replace: estimate the person's own colour in the "
                                                     "soft edge so the old background does not tint it (Forte & "
                                                     "Pitié 2021). Default: on for photos, off for video and live "
                                                     "(~18 ms a 720p frame).")] = None,
    threads: Annotated[int | None, typer.Option(help="CPU threads for inference.")] = None,
    quiet: Annotated[bool, typer.Option(help="No progress bar or model line.")] = False,
    camera_size: Annotated[str | None, typer.Option(help="Webcam resolution WIDTHxHEIGHT, e.g. 1280x720.")] = None,
    camera_fps: Annotated[float | None, typer.Option(help="Webcam frame rate, e.g. 30.")] = None,
    live: Annotated[bool, typer.Option(help="Play a video file as if it were a camera (real time, newest "
                                       "frame only): try a live setup without one.")] = False,
    virtual_cam: Annotated[bool, typer.Option(help="Send a live source's frames to a virtual camera for video "
                                              "calls (pip install 'segedge[vcam]'; v4l2loopback or OBS).")] = False,
    preview: Annotated[bool, typer.Option(help="Live preview in the browser (prints its 127.0.0.1 URL), with "
                                          "frames/s, stage times and effect controls.")] = False,
    preview_port: Annotated[int, typer.Option(help="Port of --preview (0: any free port).")] = 0,
    model_every: Annotated[int | None, typer.Option(help="Video and live: run the model on every N-th frame only; "
                                                    "the frames between get its matte moved along the optical flow "
                                                    "(faster; lags fast motion). Default: 2 for live sources, 1 for "
                                                    "files.")] = None,
    tta: Annotated[bool, typer.Option(help="Test-time augmentation: the model also sees each frame mirrored and the "
                                      "two outputs are averaged (twice the model time; default model on scenes "
                                      "+0.015 IoU). For photos.")] = False,
    ray: Annotated[bool, typer.Option("--ray", help="Run on Ray: images through Ray Data actors, videos one per "
                                      "task; INPUT may also be a text file listing paths, and INPUT, the listed "
                                      "paths and -o may be URIs (s3://, gs://, hdfs://, file://). Skips outputs that "
                                      "exist (rerun to resume); exit code 1 if any input failed.")] = False,
    address: Annotated[str | None, typer.Option(help="With --ray: the cluster (auto, HOST:PORT or "
                                                "ray://HOST:PORT); default: a local Ray started for this run.")]
    = None,
    actors: Annotated[int, typer.Option(help="With --ray: model actors for the images.")] = 1,
) -> None:
    from segedge.runner import RunOptions

    logging.basicConfig(level=logging.WARNING if quiet else logging.INFO, format="%(message)s")
    options = RunOptions(input=input, output=output, engine=str(engine) if engine else None, effect=effect,
                         background=background, backend=backend, threshold=threshold, smooth=smooth,
                         blur_strength=blur_strength, clean_edges=clean_edges, threads=threads, quiet=quiet,
                         camera_size=camera_size, camera_fps=camera_fps, live=live, virtual_cam=virtual_cam,
                         preview=preview, preview_port=preview_port,
                         model_every=model_every, tta=tta)
    if ray:
        _run_on_ray(options, address, actors)
        return
    if address is not None or actors != 1:
        raise SegedgeError("--address and --actors go with --ray")
    from segedge.runner import run

    result = run(options)
    if result is not None and not quiet:
        typer.echo(f"wrote {result}")


def _run_on_ray(options, address: str | None, actors: int) -> None:
    from segedge.ray_batch import run_on_ray  # only here: plain runs never import ray

    summary = run_on_ray(options, address, actors)
    for line in summary.lines():
        typer.echo(line, err=line.startswith("failed"))
    if summary.failed:
        raise typer.Exit(1)
