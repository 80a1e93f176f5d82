"""`segedge serve`: the API in-process (FastAPI's TestClient) and one real server over HTTP.

The embedded default model on real photos: every happy path also checks that the person came out."""

import json
import struct
import urllib.error
import urllib.request
import zlib
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
import pytest
from helpers import assert_one_line_error, segedge, segedge_in_process

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from segedge.runtime import Segmenter  # noqa: E402
from segedge.serve.app import Limits, Settings, create_app  # noqa: E402
from segedge.serve.local import local_server  # noqa: E402


@pytest.fixture(scope="module")
def segmenter():
    return Segmenter()


@pytest.fixture(scope="module")
def photo_path(people):
    return sorted((people / "val-portraits" / "images").iterdir())[0]


@pytest.fixture(scope="module")
def photo(photo_path) -> bytes:
    return photo_path.read_bytes()


@pytest.fixture(scope="module")
def photo_size(photo) -> tuple[int, int]:
    return cv2.imdecode(np.frombuffer(photo, np.uint8), cv2.IMREAD_COLOR).shape[:2]


def client(segmenter, **settings) -> TestClient:
    return TestClient(create_app(Settings(**settings), segmenter=segmenter), raise_server_exceptions=False)


@pytest.fixture(scope="module")
def api(segmenter) -> TestClient:
    return client(segmenter)


def decoded(reply) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(reply.content, np.uint8), cv2.IMREAD_UNCHANGED)


def assert_error(reply, status: int, *fragments):
    assert reply.status_code == status, reply.text
    body = reply.json()
    assert set(body) == {"error"} and "\n" not in body["error"] and "Traceback" not in reply.text
    for fragment in fragments:
        assert fragment in body["error"]


def person_fraction(alpha: np.ndarray) -> float:
    return float((alpha > 127).mean())


@pytest.mark.parametrize("effect, fmt, media_type, channels", [
    ("remove", "auto", "image/png", 4),
    ("remove", "jpeg", "image/jpeg", 3),  # no alpha in a JPEG: Effect.for_sink makes it a green screen
    ("blur", "auto", "image/jpeg", 3),
    ("replace", "png", "image/png", 3),
    ("mask", "auto", "image/png", 1),
])
def test_each_effect_and_format(api, photo, photo_size, effect, fmt, media_type, channels):
    reply = api.post(f"/segment?effect={effect}&format={fmt}&background=blue",
                     files={"file": ("me.jpg", photo, "image/jpeg")})
    assert reply.status_code == 200, reply.text
    assert reply.headers["content-type"] == media_type
    image = decoded(reply)
    assert image.shape[:2] == photo_size
    assert (1 if image.ndim == 2 else image.shape[2]) == channels
    if effect in ("remove", "mask") and fmt != "jpeg":
        alpha = image if image.ndim == 2 else image[..., 3]
        assert 0.05 < person_fraction(alpha) < 0.95  # a portrait: person and background both present


def test_raw_body_and_form_fields(api, photo, photo_size):
    raw = api.post("/segment?effect=mask", content=photo, headers={"content-type": "application/octet-stream"})
    form = api.post("/segment", data={"effect": "mask", "threshold": "0.5"}, files={"file": ("me.jpg", photo)})
    assert raw.status_code == form.status_code == 200
    assert decoded(raw).shape == decoded(form).shape == photo_size


def test_uploaded_background_image_replaces_the_background(api, photo, photo_size):
    """A second multipart file `background`: the person stays, every clear background pixel comes from that image
    (a flat magenta picture of another size, scaled to cover the photo)."""
    magenta = cv2.imencode(".png", np.full((50, 80, 3), (255, 0, 255), np.uint8))[1].tobytes()
    reply = api.post("/segment?format=png", files={"file": ("me.jpg", photo), "background": ("bg.png", magenta)})
    assert reply.status_code == 200, reply.text
    out = decoded(reply)
    assert out.shape == (*photo_size, 3)
    mask = decoded(api.post("/segment?effect=mask", files={"file": ("me.jpg", photo)}))
    background = out[mask == 0].astype(int)
    assert np.abs(background - (255, 0, 255)).max(axis=1).mean() < 3  # BGR magenta where there is no person
    assert np.abs(out[mask == 255].astype(int) - (255, 0, 255)).max(axis=1).mean() > 30  # the person is kept
    broken = api.post("/segment", files={"file": ("me.jpg", photo), "background": ("bg.png", b"not an image")})
    assert_error(broken, 400, "corrupt")


def test_health_spec_page_and_openapi(api):
    assert api.get("/health").json()["status"] == "ok"
    assert api.get("/spec").json()["input_size"]
    page = api.get("/")
    assert page.status_code == 200 and 'id="file"' in page.text and 'id="clean"' in page.text
    segment = api.get("/openapi.json").json()["paths"]["/segment"]["post"]
    clean_edges = next(p for p in segment["parameters"] if p["name"] == "clean_edges")
    assert clean_edges["schema"]["type"] == "boolean" and clean_edges["schema"]["default"] is True
    assert "soft edge" in clean_edges["description"]


def test_clean_edges_over_http_match_segedge_run(photo_path, tmp_path):
    """A real server, `replace` on a real portrait: clean_edges on and off differ only in the soft edge, and each
    equals what `segedge run` writes with the same choice (--clean-edges / --no-clean-edges)."""

    def post(url: str, query: str) -> np.ndarray:
        request = urllib.request.Request(f"{url}/segment?{query}", data=photo_path.read_bytes(), method="POST",
                                         headers={"Content-Type": "image/jpeg"})
        with urllib.request.urlopen(request, timeout=120) as reply:
            return decoded_bytes(reply.read())

    replace = "effect=replace&background=blue&format=png"
    with local_server() as url:
        served = {on: post(url, f"{replace}&clean_edges={on}") for on in ("true", "false")}
        assert np.array_equal(post(url, replace), served["true"])  # on unless asked otherwise, as for photos
        matte = post(url, "effect=mask")
    for on, flag in (("true", "--clean-edges"), ("false", "--no-clean-edges")):
        out = tmp_path / f"run_{on}.png"
        result = segedge("run", photo_path, "--effect", "replace", "--background", "blue", flag, "-o", out, "--quiet")
        assert result.returncode == 0, result.stderr
        assert np.array_equal(decoded_bytes(out.read_bytes()), served[on]), flag
    differs = np.any(served["true"] != served["false"], axis=2)
    soft = (matte > 0) & (matte < 255)
    assert soft.sum() > 1000 and differs[soft].mean() > 0.2  # the edge's colour is re-estimated
    assert not differs[~soft].any()  # clear person and clear background are the same either way


def test_clean_edges_as_a_form_field_and_bad_values(api, photo):
    on, off = (api.post("/segment?effect=remove", data={"clean_edges": value}, files={"file": ("me.jpg", photo)})
               for value in ("on", "off"))
    assert on.status_code == off.status_code == 200
    assert not np.array_equal(decoded(on)[..., :3], decoded(off)[..., :3])
    assert np.array_equal(decoded(on)[..., 3], decoded(off)[..., 3])  # the same matte
    assert_error(api.post("/segment", data={"clean_edges": "maybe"}, files={"file": ("me.jpg", photo)}), 400,
                 "clean_edges")
    assert_error(api.post("/segment?clean_edges=maybe", content=photo), 422, "clean_edges")


def test_token_required_then_accepted(segmenter, photo):
    guarded = client(segmenter, token="s3cret")
    assert_error(guarded.post("/segment", content=photo), 401, "bearer token")
    assert_error(guarded.post("/segment", content=photo, headers={"authorization": "Bearer wrong"}), 401)
    assert_error(guarded.get("/spec"), 401)
    assert guarded.get("/health").status_code == 200  # for load balancers' probes
    ok = guarded.post("/segment", content=photo, headers={"authorization": "Bearer s3cret"})
    assert ok.status_code == 200


def test_oversize_body_refused(segmenter, photo):
    small = client(segmenter, limits=Limits(max_bytes=len(photo) - 1))
    assert_error(small.post("/segment", content=photo), 413, "limit")
    chunked = small.post("/segment", content=iter([photo[:1000], photo[1000:]]))  # no Content-Length to trust
    assert_error(chunked, 413, "limit")


def pixel_bomb(width=30000, height=30000) -> bytes:
    """A PNG of a few hundred bytes whose header claims width x height pixels (900 megapixels)."""
    ok, png = cv2.imencode(".png", np.zeros((8, 8), np.uint8))
    data = bytearray(png.tobytes())
    data[16:24] = struct.pack(">II", width, height)  # IHDR's width and height
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))  # IHDR's CRC over type + fields
    return bytes(data)


def test_pixel_bombs_refused(api):
    assert_error(api.post("/segment", content=pixel_bomb(), headers={"content-type": "image/png"}), 413, "limit")
    assert_error(api.post("/segment", content=pixel_bomb(9000, 9000)), 413, "9000x9000 image is larger")


@pytest.mark.parametrize("body, content_type, status, fragment", [
    (b"not an image at all", "image/jpeg", 400, "corrupt"),
    (b"", "image/jpeg", 400, "corrupt"),
    (b'{"image": 1}', "application/json", 415, "not an image"),
])
def test_bad_uploads_get_one_line_errors(api, body, content_type, status, fragment):
    assert_error(api.post("/segment", content=body, headers={"content-type": content_type}), status, fragment)


def test_truncated_image_and_bad_options(api, photo):
    assert_error(api.post("/segment", content=photo[: len(photo) // 3]), 400)  # header fine, pixels missing
    assert_error(api.post("/segment?effect=sparkle", content=photo), 400, "unknown effect")
    assert_error(api.post("/segment?format=gif", content=photo), 400, "unknown format")
    assert_error(api.post("/segment?threshold=2", content=photo), 400, "threshold")
    assert_error(api.post("/segment?threshold=abc", content=photo), 422, "threshold")
    assert_error(api.post("/segment?background=/etc/hostname", content=photo), 400)  # colours only, no files
    assert_error(api.post("/segment", files={"other": ("x.jpg", photo)}), 400, "'file'")
    assert_error(api.get("/missing"), 404)


def test_serve_refuses_a_missing_model_in_one_line():
    assert_one_line_error(segedge_in_process("serve", "--engine", "no_such_model.onnx"), "no_such_model.onnx")


def test_real_server_answers_concurrent_clients(photo, photo_size):
    """16 clients at once against `segedge serve` with two worker processes and a token: every request succeeds."""

    def post(url: str) -> tuple[int, tuple]:
        request = urllib.request.Request(f"{url}/segment?effect=mask", data=photo, method="POST",
                                         headers={"Content-Type": "image/jpeg", "Authorization": "Bearer t0k"})
        with urllib.request.urlopen(request, timeout=120) as reply:
            return reply.status, decoded_bytes(reply.read()).shape

    with local_server("--workers", "2", "--token", "t0k") as url:
        with urllib.request.urlopen(f"{url}/health", timeout=10) as health:
            assert json.load(health)["token_required"] is True
        with ThreadPoolExecutor(16) as pool:
            results = list(pool.map(post, [url] * 16))
    assert results == [(200, photo_size)] * 16


def test_real_server_over_its_in_flight_limit_answers_503_and_keeps_serving(photo):
    def status(url: str) -> int:
        request = urllib.request.Request(f"{url}/segment?effect=mask", data=photo, method="POST",
                                         headers={"Content-Type": "image/jpeg"})
        try:
            with urllib.request.urlopen(request, timeout=120) as reply:
                return reply.status
        except urllib.error.HTTPError as refused:
            return refused.code

    with local_server("--max-in-flight", "2") as url:
        with ThreadPoolExecutor(6) as pool:
            statuses = list(pool.map(status, [url] * 6))
        after = status(url)
    assert set(statuses) <= {200, 503} and after == 200, statuses


def decoded_bytes(data: bytes) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
