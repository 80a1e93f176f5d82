"""`segedge serve --ray`: the same FastAPI app (segedge.serve.app) deployed with Ray Serve, N replicas each holding
one model. Ray's HTTP proxy takes the requests and spreads them over the replicas, which may sit on any node.

Each replica builds its own app with `create_app` when it starts (`__serve_build_asgi_app__`), so the routes, limits,
token check and errors are those of the plain server, and the model is loaded where it runs, never pickled.
"""

from __future__ import annotations

import logging
import time

from ray import serve

from segedge.errors import SegedgeError
from segedge.ray_cluster import connected, cpus_per_worker, gpus_per_worker, portable_engine
from segedge.serve.app import Settings, create_app

APP_NAME = "segedge"
log = logging.getLogger("segedge")


@serve.ingress()
class SegedgeReplica:
    """One Ray Serve replica: the plain server's app over its own Segmenter."""

    def __init__(self, settings: Settings):
        self.settings = settings

    def __serve_build_asgi_app__(self):
        return create_app(self.settings)


def start_serve(host: str, port: int) -> None:
    """Ray Serve's controller and HTTP proxy; one line, not Ray's traceback, when they do not come up (a proxy
    that is not ready within Ray's timeout is killed: seen on a 2-core machine busy with other work)."""
    from ray.exceptions import RayError

    try:
        serve.start(http_options={"host": host, "port": port})
    except RayError as exc:
        lines = str(exc).strip().splitlines()  # Ray's last line holds the cause ("...Error: address in use")
        reason = lines[-1].strip() if lines else type(exc).__name__
        raise SegedgeError(f"Ray Serve did not start on {host}:{port}: {reason}") from None


def serve_on_ray(settings: Settings, host: str, port: int, workers: int, address: str | None,
                 max_in_flight: int) -> None:
    """Deploy `workers` replicas behind Ray's HTTP proxy on host:port and serve until Ctrl-C or SIGTERM; then the
    app is deleted (and a local Ray started here stopped). Requests queued past `max_in_flight` get 503."""
    with connected(address) as local:
        cpus, threads = cpus_per_worker(workers, settings.threads)
        start_serve(host, port)
        deployment = serve.deployment(SegedgeReplica, name=APP_NAME, num_replicas=workers,
                                      ray_actor_options={"num_cpus": cpus,  # a TensorRT engine: a GPU each
                                                         "num_gpus": gpus_per_worker(settings.engine, "auto")},
                                      max_queued_requests=max_in_flight)
        try:
            replica = Settings(portable_engine(settings.engine), settings.token, threads, settings.limits)
            serve.run(deployment.bind(replica), name=APP_NAME, route_prefix="/")
            log.info("segedge on Ray Serve: http://%s:%d with %d replica(s), %d inference thread(s) each; Ctrl-C "
                     "stops", host, port, workers, threads)
            while True:  # until Ctrl-C or SIGTERM (segedge's handler: it unwinds like Ctrl-C)
                time.sleep(3600)
        finally:  # on a shared cluster remove only this app; a local Ray goes away whole
            if local:
                serve.shutdown()
            else:
                serve.delete(APP_NAME)

