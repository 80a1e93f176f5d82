import importlib.util
import logging
import os
from typing import Annotated

import typer

from segedge.backends import resolve_model
from segedge.errors import SegedgeError, missing_extra

NAME = "serve"
HELP = ("An HTTP API (OpenAPI docs at /docs) and a web page at / that segment uploaded photos: POST /segment, "
        "GET /health, GET /spec. Binds to 127.0.0.1 unless told otherwise.")
EXAMPLES = """Examples:\n\n
  segedge serve                                            # http://127.0.0.1:8080 (web page at /)\n\n
  curl -F file=@photo.jpg 'http://127.0.0.1:8080/segment?effect=remove' -o cutout.png\n\n
  curl --data-binary @photo.jpg -H 'Content-Type: image/jpeg' 'http://127.0.0.1:8080/segment?effect=mask' -o m.png\n\n
  SEGEDGE_TOKEN=secret segedge serve --host 0.0.0.0 --workers 2   # clients send 'Authorization: Bearer secret'\n\n
  segedge serve --ray --workers 4 --address auto               # Ray Serve replicas on an existing cluster
"""
NEEDS = {"fastapi": "fastapi", "uvicorn": "uvicorn", "multipart": "python-multipart", "PIL": "pillow"}


def command(
    engine: Annotated[str | None, typer.Option(help=".onnx, .trt/.engine, .pth, or an embedded model by name: "
                                          "default, default-int8, fast, fast-int8 (default: default).")] = None,
    host: Annotated[str, typer.Option(help="Address to bind; 0.0.0.0 exposes the server to the network.")]
    = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8080,
    workers: Annotated[int, typer.Option(help="Server processes, each holding one model.")] = 1,
    token: Annotated[str | None, typer.Option(envvar="SEGEDGE_TOKEN", show_envvar=True,
                                              help="Require 'Authorization: Bearer TOKEN' on /segment and /spec.")]
    = None,
    threads: Annotated[int | None, typer.Option(help="CPU threads for inference per worker.")] = None,
    max_mb: Annotated[float, typer.Option(help="Largest upload in MB.")] = 20.0,
    max_megapixels: Annotated[float, typer.Option(help="Largest image in megapixels (decompression bombs).")]
    = 40.0,
    max_in_flight: Annotated[int, typer.Option(help="Connections and requests per worker at once; more get "
                                               "503 (bounds the memory of queued uploads). With --ray: requests "
                                               "queued per replica.")] = 64,
    ray: Annotated[bool, typer.Option("--ray", help="Deploy on Ray Serve: --workers replicas, each holding one "
                                      "model (pip install 'segedge[ray]').")] = False,
    address: Annotated[str | None, typer.Option(help="With --ray: the cluster (auto, HOST:PORT or "
                                                "ray://HOST:PORT); default: a local Ray started for this server.")]
    = None,
) -> None:
    for module, package in NEEDS.items():
        if importlib.util.find_spec(module) is None:
            raise missing_extra(package, "serve")
    if address is not None and not ray:
        raise SegedgeError("--address goes with --ray")
    if ray:
        from segedge.ray_cluster import require_ray

        require_ray("serve")
    import uvicorn

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if host not in ("127.0.0.1", "localhost", "::1") and token is None:
        logging.getLogger("segedge").warning("WARNING: serving on %s without --token: anyone who can reach it may "
                                             "use it", host)
    # each worker process builds its app from these (uvicorn starts workers from an import string)
    os.environ.update({"SEGEDGE_ENGINE": engine or "", "SEGEDGE_TOKEN": token or "",
                       "SEGEDGE_THREADS": str(threads or ""), "SEGEDGE_MAX_BYTES": str(int(max_mb * 2**20)),
                       "SEGEDGE_MAX_PIXELS": str(int(max_megapixels * 1e6))})
    from segedge.serve.app import Settings, create_app

    # one worker: build the app here, so a bad --engine fails now with a one-line error, not inside uvicorn
    if workers < 1:
        raise SegedgeError(f"--workers {workers}: give at least 1")
    if max_in_flight < 2:  # uvicorn counts the connection and its request: 1 would refuse everything
        raise SegedgeError(f"--max-in-flight {max_in_flight}: give at least 2")
    if (workers > 1 or ray) and not resolve_model(engine).is_file():
        raise SegedgeError(f"model file not found: {engine}")
    if ray:
        from segedge.serve.ray_serve import serve_on_ray  # only here: plain serving never imports ray

        serve_on_ray(Settings.from_env(), host, port, workers, address, max_in_flight)
        return
    target = create_app(Settings.from_env()) if workers == 1 else "segedge.serve.app:app_from_env"
    uvicorn.run(target, host=host, port=port, workers=workers, factory=workers > 1, log_level="info",
                limit_concurrency=max_in_flight)
