"""A live preview that needs no GUI build of OpenCV: frames served as an MJPEG stream on 127.0.0.1 with a small
page that shows them, the frames/s and each stage's milliseconds, and switches effect, blur strength and edge
cleaning (foreground colour estimation in remove/replace, segedge.foreground) live.

Standard library only (http.server): the default install (opencv-python-headless) has no window, but every machine
has a browser. The page posts its controls to /control; the stream loop picks them up between frames through
`Preview.controls` (see stream()'s `controls`).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

import cv2
import numpy as np

from segedge.effects import EFFECTS, Effect, parse_switch
from segedge.errors import SegedgeError
from segedge.stream.loop import STAGES, Stats
from segedge.stream.sinks import EndOfStream, Sink, as_rgb
from segedge.stream.sources import Frame

log = logging.getLogger("segedge")
BOUNDARY = "segedgeframe"
FRAME_WAIT = 1.0  # s: how long a stream client waits for a frame before checking whether the server stops
JPEG_QUALITY = 80

PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>segedge preview</title>
<style>body{font-family:sans-serif;background:#222;color:#eee;margin:1em}img{max-width:100%%}</style></head><body>
<img src="/stream.mjpg" alt="live preview"><p id="stats">...</p>
<form id="controls">effect <select name="effect">%(options)s</select>
 blur strength <input name="blur_strength" type="range" min="1" max="61" value="%(blur)d">
 <label>clean edges <input name="clean_edges" type="checkbox" %(clean)s></label></form>
<script>
const form = document.getElementById("controls");
form.onchange = () => {
  const fields = new URLSearchParams(new FormData(form));
  fields.set("clean_edges", form.clean_edges.checked);  // a form leaves an unticked box out: send it either way
  fetch("/control", {method: "POST", body: fields});
};
setInterval(async () => {
  const s = await (await fetch("/stats")).json();
  const stages = Object.entries(s.stage_ms).map(([k, v]) => k + " " + v.toFixed(1)).join(", ");
  document.getElementById("stats").textContent = s.fps.toFixed(1) + " frames/s; ms per frame: " + stages;
}, 1000);
</script></body></html>"""


class Preview(Sink):
    """Frames as JPEG to every browser watching http://127.0.0.1:`port`/ (0: a free port, see `url`). `stats`, the
    Stats the stream fills, feeds the page's numbers; `effect`, the starting one, is what the controls change."""

    def __init__(self, effect: Effect, stats: Stats, port: int = 0, host: str = "127.0.0.1"):
        self.effect, self.stats, self.address = effect, stats, (host, port)
        self.changed: Effect | None = None  # asked for by the page, not yet taken by the stream
        self.lock = threading.Lock()  # between the page's thread setting `changed` and the stream taking it
        self.jpeg, self.number = b"", 0  # the newest frame and how many came before it
        self.shown: deque[float] = deque(maxlen=30)  # when the last frames were written: the page's frames/s
        self.fresh = threading.Condition()
        self.stopping = threading.Event()

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/"

    def __enter__(self):
        try:
            self.server = ThreadingHTTPServer(self.address, _handler(self))
        except OSError as exc:
            raise SegedgeError(f"the preview cannot listen on {self.address[0]}:{self.address[1]} ({exc.strerror}); "
                               "pick another --preview-port") from None
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def write(self, image: np.ndarray, frame: Frame) -> None:
        if self.stopping.is_set():
            raise EndOfStream
        ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(as_rgb(image)[..., :3], cv2.COLOR_RGB2BGR),
                                [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        with self.fresh:
            self.jpeg, self.number = jpeg.tobytes(), self.number + 1
            self.fresh.notify_all()
        self.shown.append(time.perf_counter())

    def next_jpeg(self, after: int) -> tuple[int, bytes] | None:
        """The first frame newer than number `after`; None once the preview stops."""
        with self.fresh:
            while self.number <= after:
                if self.stopping.is_set():
                    return None
                self.fresh.wait(FRAME_WAIT)
            return self.number, self.jpeg

    def controls(self) -> Effect | None:
        """For stream(): the effect the page asked for since the last frame, if any."""
        with self.lock:
            changed, self.changed = self.changed, None
        return changed

    def control(self, fields: dict[str, str]) -> None:
        """Apply the page's form (effect, blur_strength, clean_edges); a bad value is a SegedgeError."""
        name = fields.get("effect", self.effect.name)
        try:
            strength = int(fields.get("blur_strength", self.effect.blur_strength))
        except ValueError:
            raise SegedgeError(f"blur_strength must be a whole number, got {fields['blur_strength']!r}") from None
        if strength < 1:
            raise SegedgeError(f"blur strength must be at least 1, got {strength}")
        clean = parse_switch(fields.get("clean_edges", self.effect.clean_edges), "clean_edges")
        with self.lock:  # replace() checks the name
            self.effect = self.changed = replace(self.effect, name=name, blur_strength=strength, clean_edges=clean)

    def numbers(self) -> dict:
        frames = max(self.stats.frames, 1)
        times = list(self.shown)
        fps = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 and times[-1] > times[0] else 0.0
        return {"fps": fps, "frames": self.stats.frames, "effect": self.effect.name,
                "blur_strength": self.effect.blur_strength, "clean_edges": self.effect.clean_edges,
                "stage_ms": {stage: self.stats.stage_seconds[stage] * 1000 / frames for stage in STAGES}}

    def stop(self) -> None:
        """End the stream at its next frame and let every client go (also what leaving the block does)."""
        self.stopping.set()
        with self.fresh:
            self.fresh.notify_all()

    def __exit__(self, *exc) -> None:
        self.stop()
        self.server.shutdown()
        self.server.server_close()


def _handler(preview: Preview) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            if self.path == "/":
                options = "".join(f"<option{' selected' if e == preview.effect.name else ''}>{e}</option>"
                                  for e in EFFECTS)
                self._send(PAGE % {"options": options, "blur": preview.effect.blur_strength,
                                   "clean": "checked" if preview.effect.clean_edges else ""}, "text/html")
            elif self.path == "/stats":
                self._send(json.dumps(preview.numbers()), "application/json")
            elif self.path == "/stream.mjpg":
                self._stream()
            else:
                self.send_error(404)

        def do_POST(self) -> None:  # noqa: N802
            if self.path != "/control":
                return self.send_error(404)
            body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
            try:
                preview.control({key: values[-1] for key, values in parse_qs(body).items()})
            except SegedgeError as exc:
                return self._send(str(exc), "text/plain", 400)
            self._send(json.dumps(preview.numbers()), "application/json")

        def _send(self, text: str, kind: str, status: int = 200) -> None:
            body = text.encode()
            self.send_response(status)
            self.send_header("Content-Type", f"{kind}; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _stream(self) -> None:
            """Every new frame as one part of a multipart/x-mixed-replace response, until the client leaves or the
            preview stops."""
            self.send_response(200)
            self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            number = 0
            while (item := preview.next_jpeg(number)) is not None:
                number, jpeg = item
                try:
                    self.wfile.write(f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n"
                                     .encode() + jpeg + b"\r\n")
                except (BrokenPipeError, ConnectionResetError):
                    return

        def log_message(self, format, *args) -> None:  # noqa: A002 (http.server's signature)
            log.debug("preview: " + format, *args)

    return Handler
