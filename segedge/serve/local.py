"""`segedge serve` in a child process on a free port of 127.0.0.1, for tests and the load benchmark."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def local_server(*args, env=None, timeout: float = 120.0) -> Iterator[str]:
    """Yields the server's base URL once /health answers (polled at most `timeout` seconds); stops it afterwards."""
    port = free_port()
    log = tempfile.TemporaryFile("w+")  # a file, not a pipe: a full pipe would stall the server
    server = subprocess.Popen([sys.executable, "-m", "segedge.cli", "serve", "--port", str(port), *map(str, args)],
                              env=env, stdout=log, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while not _healthy(url):
            if server.poll() is not None or time.monotonic() > deadline:
                log.seek(0)
                raise RuntimeError(f"segedge serve did not start: {log.read()[-3000:]}")
            time.sleep(0.2)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=5):
            return True
    except OSError:
        return False
