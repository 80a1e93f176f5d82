"""The web page of `segedge serve` in a real headless Chromium (Debian's package, driven by playwright; nothing
downloads a browser): upload a real photo, wait for the result, check it, keep a screenshot for the README."""

import base64
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from segedge.serve.local import local_server

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOT = Path(__file__).resolve().parent.parent / "benchmarks" / "results" / "serve_page.png"
# the image the page shows, as base64 (read back from its blob: URL, as the download link would save it)
RESULT_BYTES = """async () => {
  const blob = await (await fetch(document.getElementById("result").src)).blob();
  const url = await new Promise((done) => { const r = new FileReader(); r.onload = () => done(r.result);
                                            r.readAsDataURL(blob); });
  return url.split(",")[1];
}"""


@pytest.fixture(scope="module")
def browser():
    pytest.importorskip("fastapi")
    sync_api = pytest.importorskip("playwright.sync_api")
    if not CHROMIUM.is_file():
        pytest.skip(f"no Chromium at {CHROMIUM}: install Debian's package (make chromium)")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM))
        yield browser
        browser.close()


def test_page_uploads_a_photo_and_shows_the_cutout(browser, people, tmp_path):
    photo = shutil.copy(sorted((people / "val-portraits" / "images").iterdir())[0], tmp_path / "portrait.jpg")
    height, width = cv2.imread(str(photo)).shape[:2]
    with local_server() as url:
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.goto(url, timeout=60_000)
        with page.expect_response(lambda reply: "/segment" in reply.url, timeout=120_000) as answer:
            page.set_input_files("#file", str(photo))  # choosing a photo sends it (effect: remove)
        page.wait_for_selector("#status[data-done]", timeout=60_000)
        assert answer.value.status == 200
        cutout = cv2.imdecode(np.frombuffer(base64.b64decode(page.evaluate(RESULT_BYTES)), np.uint8),
                              cv2.IMREAD_UNCHANGED)
        shown = page.evaluate("[document.getElementById('result').naturalWidth, "
                              "document.getElementById('result').naturalHeight]")
        assert page.is_visible("#download")
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOT), full_page=True)
        page.evaluate("delete document.getElementById('status').dataset.done")
        with page.expect_response(lambda reply: "clean_edges=false" in reply.url, timeout=120_000) as unticked:
            page.uncheck("#clean")  # sends the photo again, edge colours as they are in the photo
        page.wait_for_selector("#status[data-done]", timeout=60_000)
        assert unticked.value.status == 200
        plain = cv2.imdecode(np.frombuffer(base64.b64decode(page.evaluate(RESULT_BYTES)), np.uint8),
                             cv2.IMREAD_UNCHANGED)
        page.close()
    assert "clean_edges=true" in answer.value.url  # ticked by default, as segedge run does for photos
    assert cutout.shape == (height, width, 4) and shown == [width, height]
    person = (cutout[..., 3] > 127).mean()
    assert 0.05 < person < 0.95, person
    assert np.array_equal(plain[..., 3], cutout[..., 3])  # the same matte
    soft, opaque = (cutout[..., 3] > 0) & (cutout[..., 3] < 255), cutout[..., 3] == 255
    assert np.any(plain[soft, :3] != cutout[soft, :3])  # the edge's colours change
    assert np.array_equal(plain[opaque, :3], cutout[opaque, :3])  # the person's own pixels do not
