"""The HTTP app behind `segedge serve`: POST an image, get the effect's output back; a web page at `/`.

One Segmenter per process and a lock around its inference: a few requests decode, composite and encode in
parallel threads and queue only for the model, which already uses every core; the others wait with their upload
still encoded, so many waiting clients cost their bodies' bytes, not decoded frames.
Uploads are checked before any decoding: body size first, then the pixel count from the image header (Pillow
reads only the header), so a small file that would decode to gigabytes is refused with 413.
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
from dataclasses import dataclass, replace
from importlib import resources
from io import BytesIO
from typing import Annotated

import numpy as np
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from segedge.effects import DEFAULT_BLUR, EFFECTS, Effect, parse_color, parse_switch
from segedge.errors import SegedgeError
from segedge.media import decode_image
from segedge.runtime import Segmenter, check_threshold
from segedge.stream.sinks import FORMATS, EncodedImage
from segedge.stream.sources import Frame

log = logging.getLogger("segedge")


class ApiError(Exception):
    """A request the client can fix: answered with `status` and {"error": message}."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Limits:
    max_bytes: int = 20 * 1024 * 1024  # an upload's body
    max_pixels: int = 40_000_000  # width * height of the decoded image (a 40-megapixel photo)


@dataclass(frozen=True)
class Settings:
    engine: str | None = None
    token: str | None = None
    threads: int | None = None
    limits: Limits = Limits()

    @classmethod
    def from_env(cls) -> Settings:
        """What `segedge serve` passes to each uvicorn worker process (they start from an import string)."""
        env = os.environ
        return cls(engine=env.get("SEGEDGE_ENGINE") or None, token=env.get("SEGEDGE_TOKEN") or None,
                   threads=int(env["SEGEDGE_THREADS"]) if env.get("SEGEDGE_THREADS") else None,
                   limits=Limits(int(env.get("SEGEDGE_MAX_BYTES", Limits.max_bytes)),
                                 int(env.get("SEGEDGE_MAX_PIXELS", Limits.max_pixels))))


UPLOAD_DOC = {  # the body is read by hand (size limit first), so OpenAPI is told what it may be
    "requestBody": {"required": True, "content": {
        "multipart/form-data": {"schema": {"type": "object", "required": ["file"],
                                           "properties": {"file": {"type": "string", "format": "binary"},
                                                          "background": {"type": "string", "format": "binary"}}}},
        "image/*": {"schema": {"type": "string", "format": "binary"}},
        "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}},
    "responses": {"200": {"description": "the result image", "content": {
        "image/png": {}, "image/jpeg": {}}}},
}


CLEAN_EDGES_DOC = ("remove and replace: estimate the person's own colour in the soft edge, so the old background "
                   "does not tint it (segedge run's --clean-edges; on by default for photos, as there)")


def create_app(settings: Settings | None = None, segmenter: Segmenter | None = None) -> FastAPI:
    settings = settings or Settings()
    model = segmenter or Segmenter(settings.engine, threads=settings.threads)
    model_lock = threading.Lock()  # one inference at a time: the model's own threads fill the cores
    # decoded frames in memory at once (up to max_pixels each): enough to decode and encode around the model
    slots = threading.BoundedSemaphore(max(2, os.cpu_count() or 1))
    app = FastAPI(title="segedge", version=_version(), description="Person segmentation: blur, remove or replace "
                  "the background of an image, or get its mask.")
    add_error_handlers(app)

    def check_token(request: Request) -> None:
        if settings.token is None:
            return
        given = request.headers.get("authorization", "")
        if not secrets.compare_digest(given.encode(), f"Bearer {settings.token}".encode()):
            raise ApiError(401, "missing or wrong bearer token (send 'Authorization: Bearer TOKEN')")

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page() -> str:
        return resources.files("segedge.serve").joinpath("page.html").read_text(encoding="utf-8")

    @app.get("/health")
    def health() -> dict:
        return {"status": "ok", "model": model.spec.name, "backend": model.backend.describe(),
                "token_required": settings.token is not None}

    @app.get("/spec")
    def spec(request: Request) -> dict:
        check_token(request)
        return model.spec.to_dict()

    @app.post("/segment", openapi_extra=UPLOAD_DOC, response_class=Response)
    async def segment(request: Request, effect: str = "remove", background: str | None = None,
                      threshold: float | None = None, blur_strength: int = DEFAULT_BLUR,
                      format: str = "auto", clean_edges: Annotated[bool, Query(description=CLEAN_EDGES_DOC)] = True,
                      ) -> Response:
        """Effect `blur`, `remove`, `replace` or `mask`; `background` a colour (green, #00b140, 0,177,64), or a
        multipart file field `background` holding an image for `replace` (scaled to cover the photo); `format`
        png, jpeg or auto (PNG for remove and mask, else JPEG); `clean_edges` (default true, as `segedge run` on
        photos) estimates the person's own colour in the soft edge for remove and replace. Options may also come as
        form fields."""
        check_token(request)
        data, fields, background_image = await read_upload(request, settings.limits)
        options = {"effect": effect, "background": background, "threshold": threshold,
                   "blur_strength": blur_strength, "format": format, "clean_edges": clean_edges, **fields}
        job = Job.parse(options)

        def process() -> tuple[bytes, str]:  # CPU work, off the event loop
            with slots:
                rgb = decode_checked(data, settings.limits)
                chosen = job if background_image is None else job.with_background(
                    decode_checked(background_image, settings.limits))
                with model_lock:
                    matte = model.mask(rgb, job.threshold)
                return chosen.render(rgb, matte)

        body, media_type = await run_in_threadpool(process)
        return Response(body, media_type=media_type)

    return app


@dataclass(frozen=True)
class Job:
    """A request's options, checked: the effect to apply and the format to answer in."""

    effect: Effect
    format: str
    threshold: float | None

    @classmethod
    def parse(cls, options: dict) -> Job:
        name, fmt = str(options["effect"]), str(options["format"]).lower()
        if name not in EFFECTS:
            raise ApiError(400, f"unknown effect {name!r}; choose one of {', '.join(EFFECTS)}")
        if fmt not in (*FORMATS, "auto"):
            raise ApiError(400, f"unknown format {fmt!r}; choose png, jpeg or auto")
        background = options.get("background") or None
        # a colour only: a file name would let a client read images off the server's disk
        colour = parse_color(background) if background else None
        threshold = _number(options.get("threshold"), float, "threshold")
        check_threshold(threshold)
        strength = _number(options.get("blur_strength"), int, "blur_strength")
        effect = Effect(name, colour, DEFAULT_BLUR if strength is None else strength,
                        parse_switch(options.get("clean_edges", True), "clean_edges"))
        return cls(effect, "png" if fmt == "auto" and name in ("remove", "mask") else
                   "jpeg" if fmt == "auto" else fmt, threshold)

    def with_background(self, image: np.ndarray) -> Job:
        """The uploaded background image replaces the colour (the effect becomes `replace` unless it is `mask`)."""
        name = "mask" if self.effect.name == "mask" else "replace"
        return replace(self, effect=replace(self.effect, name=name, background=image))

    def render(self, rgb: np.ndarray, matte: np.ndarray) -> tuple[bytes, str]:
        sink = EncodedImage(self.format)
        sink.write(self.effect.for_sink(sink)(rgb, matte), Frame(rgb))
        return sink.data, sink.media_type


def _number(value, kind, name: str):
    if value is None or value == "":
        return None
    try:
        return kind(value)
    except (TypeError, ValueError):
        raise ApiError(400, f"{name} {value!r} is not a number") from None


async def read_upload(request: Request, limits: Limits) -> tuple[bytes, dict[str, str], bytes | None]:
    """The image's bytes, any form fields and a background image's bytes (multipart field `background`), from a
    multipart form (field `file`) or a raw image body."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limits.max_bytes:
        raise ApiError(413, f"upload of {int(declared)} bytes is larger than the limit of {limits.max_bytes}")
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if not (kind == "multipart/form-data" or kind.startswith("image/") or kind in ("application/octet-stream", "")):
        raise ApiError(415, f"content type {kind!r} is not an image; send multipart/form-data (field 'file') "
                       "or the image bytes as image/* or application/octet-stream")
    body = bytearray()
    async for chunk in request.stream():  # counted as it arrives: a chunked body has no length to check up front
        body += chunk
        if len(body) > limits.max_bytes:
            raise ApiError(413, f"upload is larger than the limit of {limits.max_bytes} bytes")
    if kind != "multipart/form-data":
        return bytes(body), {}, None
    return await _form_files(request, bytes(body))


async def _form_files(request: Request, body: bytes) -> tuple[bytes, dict[str, str], bytes | None]:
    async def replay():
        return {"type": "http.request", "body": body, "more_body": False}

    form = await Request(request.scope, replay).form()
    upload = form.get("file")
    if upload is None or isinstance(upload, str):
        raise ApiError(400, "multipart upload without a file field named 'file'")
    fields = {key: value for key, value in form.items() if isinstance(value, str)}
    background = form.get("background")
    return await upload.read(), fields, None if isinstance(background, str | None) else await background.read()


def decode_checked(data: bytes, limits: Limits) -> np.ndarray:
    """Decode an upload after checking its pixel count from the header alone (decompression bombs)."""
    from PIL import Image, UnidentifiedImageError

    too_large = f"image is larger than the limit of {limits.max_pixels} pixels"
    try:
        with Image.open(BytesIO(data)) as header:
            width, height = header.size
    except Image.DecompressionBombError:  # Pillow's own bound (twice Image.MAX_IMAGE_PIXELS) came first
        raise ApiError(413, too_large) from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        raise ApiError(400, "the upload is empty, corrupt or not an image") from None
    if width * height > limits.max_pixels:
        raise ApiError(413, f"{width}x{height} {too_large}")
    return decode_image(data)


def add_error_handlers(app: FastAPI) -> None:
    """Every error is {"error": "one line"} with a 4xx status; an unexpected one is a 500 without a traceback."""

    def reply(status: int, message: str) -> JSONResponse:
        return JSONResponse({"error": " ".join(str(message).split())}, status_code=status)

    @app.exception_handler(ApiError)
    async def api_error(request, exc: ApiError):
        return reply(exc.status, str(exc))

    @app.exception_handler(SegedgeError)
    async def segedge_error(request, exc: SegedgeError):
        return reply(400, str(exc))

    @app.exception_handler(HTTPException)
    async def http_error(request, exc: HTTPException):
        return reply(exc.status_code, exc.detail)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request, exc: RequestValidationError):
        first = exc.errors()[0]
        return reply(422, f"{'.'.join(map(str, first['loc']))}: {first['msg']}")

    @app.exception_handler(Exception)
    async def unexpected(request, exc: Exception):
        log.exception("segedge serve: unexpected error")  # the traceback stays in the server's log
        return reply(500, "internal error; the server log has the details")


def _version() -> str:
    from segedge import __version__

    return __version__


def app_from_env() -> FastAPI:
    """uvicorn factory for `segedge serve` (each worker process builds its own app and model)."""
    return create_app(Settings.from_env())
