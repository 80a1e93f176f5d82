"""Live sources and outputs: newest frame wins and stale ones are counted, latency is reported, a video file plays as
a camera, the virtual camera's frames and its error when there is none, and the browser preview with live controls.

No assertion here is about time: live behaviour is forced with events, and real files play at their own rate."""

import json
import re
import sys
import threading
import types
import urllib.error
import urllib.request
from dataclasses import replace
from itertools import pairwise

import cv2
import numpy as np
import pytest
from helpers import assert_one_line_error, ffprobe, make_video, segedge

from segedge.effects import Effect, alpha_to_uint8
from segedge.errors import SegedgeError
from segedge.runtime import Segmenter
from segedge.stream import Sink, Stats, stream
from segedge.stream.preview import Preview
from segedge.stream.sinks import VirtualCamera, camera_frame
from segedge.stream.sources import Images, LiveSource, LiveVideo

WAIT = 20  # s: an upper bound for any one wait, so a broken test fails instead of hanging


class HalfModel:
    max_batch = 1

    def model_inputs(self, frames):
        return [frame[None].astype(np.float32) for frame in frames]

    def infer(self, tensors):
        return [np.full(t.shape[1:3], 0.5, np.float32) for t in tensors]

    def to_matte(self, prob, frame, threshold=None):
        return prob


class Bursts(LiveSource):
    """A camera that delivers frames in bursts of `size` while the consumer is still busy with the previous frame:
    frame 0 alone, then bursts 1-5, 6-10, ...; a frame's pixels are its number."""

    def __init__(self, bursts=3, size=5):
        self.bursts, self.size = bursts, size
        self.writing = [threading.Event() for _ in range(bursts + 1)]
        self.published = [threading.Event() for _ in range(bursts + 1)]

    def capture(self):
        yield np.zeros((4, 6, 3), np.uint8)
        for burst in range(1, self.bursts + 1):
            assert self.writing[burst - 1].wait(WAIT)  # the consumer is busy with the previous frame
            for offset in range(self.size):
                yield np.full((4, 6, 3), (burst - 1) * self.size + offset + 1, np.uint8)
            self.published[burst].set()


class Held(Sink):
    """Writes stay busy until the source has published its next burst."""

    def __init__(self, source):
        self.source, self.numbers = source, []

    def write(self, image, frame):
        burst = len(self.numbers)
        self.numbers.append(int(frame.rgb[0, 0, 0]))
        self.source.writing[burst].set()
        if burst + 1 <= self.source.bursts:
            assert self.source.published[burst + 1].wait(WAIT)


def test_a_live_source_hands_out_the_newest_frame_and_counts_the_stale_ones():
    source = Bursts(bursts=3, size=5)
    sink = Held(source)
    stats = stream(source, HalfModel(), sink, Effect("mask"))
    assert sink.numbers == [0, 5, 10, 15]  # the last of each burst; 4 of every 5 were never queued
    assert stats.frames == 4 and stats.dropped == 12
    assert len(stats.latencies) == 4 and all(latency > 0 for latency in stats.latencies)
    assert re.search(r"latency capture to output p50 \d+ ms, p90 \d+ ms; 12 stale frames dropped", stats.summary())


def test_a_capture_error_reaches_the_caller():
    class Broken(LiveSource):
        def capture(self):
            yield np.zeros((4, 6, 3), np.uint8)
            raise OSError("camera unplugged")

    with pytest.raises(OSError, match="unplugged"):
        stream(Broken(), HalfModel(), Held(Bursts(bursts=0)), Effect("mask"))


def test_a_file_stats_report_has_no_latency():
    assert "latency" not in Stats(frames=3, seconds=1.0).summary()


def test_a_video_played_live_loops_like_a_camera(tmp_path):
    clip = make_video(tmp_path / "clip.mp4", audio=False)  # 10 frames at 10 frames/s

    class Count(Sink):
        def __init__(self):
            self.frames = []

        def write(self, image, frame):
            self.frames.append(frame)
            if len(self.frames) == 12:
                from segedge.stream import EndOfStream

                raise EndOfStream

    sink = Count()
    with LiveVideo(clip, loop=True) as source:
        assert source.rate == 10
        stream(source, HalfModel(), sink, Effect("mask"))
    assert len(sink.frames) == 12  # more than the file has: it started again
    assert all(b.pts > a.pts for a, b in pairwise(sink.frames))  # a wall clock, strictly increasing


def test_run_live_records_and_reports_latency_and_drops(tiny_onnx, tmp_path):
    clip = make_video(tmp_path / "clip.mp4", audio=False)
    out = tmp_path / "out.mp4"
    result = segedge("run", clip, "--live", "--engine", tiny_onnx, "--camera-size", "96x64", "-o", out)
    # --camera-size is for a camera: a file played --live keeps its own size
    assert result.returncode == 0, result.stderr
    summary = re.search(r"(\d+) frames in .*latency capture to output p50 \d+ ms, p90 \d+ ms; (\d+) stale frames "
                        r"dropped", result.stderr)
    assert summary, result.stderr
    shown, dropped = int(summary[1]), int(summary[2])
    assert shown + dropped == 10
    assert ffprobe(out, "stream=nb_read_frames")["streams"][0]["nb_read_frames"] == str(shown)


@pytest.mark.parametrize("args, message", [
    (["--virtual-cam"], "needs a live source"),
    (["--camera-size", "wide"], "needs a live source"),
])
def test_live_only_options_on_a_file_are_refused(tiny_onnx, tmp_path, args, message):
    clip = make_video(tmp_path / "clip.mp4", audio=False)
    assert_one_line_error(segedge("run", clip, "--engine", tiny_onnx, *args), message)


def test_a_bad_camera_size_and_live_on_an_image_are_one_line_errors(tiny_onnx, tmp_path):
    clip = make_video(tmp_path / "clip.mp4", audio=False)
    assert_one_line_error(segedge("run", clip, "--live", "--camera-size", "wide", "--engine", tiny_onnx),
                          "WIDTHxHEIGHT")
    image = tmp_path / "photo.png"
    cv2.imwrite(str(image), np.zeros((8, 8, 3), np.uint8))
    assert_one_line_error(segedge("run", image, "--live", "--engine", tiny_onnx), "not a video file")


def test_camera_frames_are_contiguous_rgb_at_the_camera_size():
    gray = np.arange(12, dtype=np.uint8).reshape(3, 4)
    assert np.array_equal(camera_frame(gray, (4, 3)), np.dstack([gray] * 3))
    rgba = np.zeros((3, 4, 4), np.uint8)
    rgba[..., 0] = 200
    out = camera_frame(rgba, (4, 3))
    assert out.shape == (3, 4, 3) and out.flags.c_contiguous and (out[..., 0] == 200).all()
    assert camera_frame(np.zeros((30, 40, 3), np.uint8), (20, 10)).shape == (10, 20, 3)


def test_the_virtual_camera_opens_at_the_first_frame_size_and_rate(monkeypatch):
    sent, opened = [], []

    class FakeCamera:
        device = "/dev/video9"

        def __init__(self, width, height, fps, device=None):
            opened.append((width, height, fps))

        def send(self, frame):
            sent.append(frame)

        def close(self):
            opened.append("closed")

    monkeypatch.setitem(sys.modules, "pyvirtualcam", types.SimpleNamespace(Camera=FakeCamera))
    with VirtualCamera(fps=25) as camera:
        for _ in range(2):
            camera.write(np.zeros((48, 64), np.uint8), None)
    assert opened == [(64, 48, 25.0), "closed"] and [f.shape for f in sent] == [(48, 64, 3)] * 2


def test_the_virtual_camera_without_pyvirtualcam_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "pyvirtualcam", None)  # import fails as if not installed
    with pytest.raises(SegedgeError, match=r"segedge\[vcam\]"), VirtualCamera():
        pass


def test_no_virtual_camera_device_is_a_one_line_error_naming_what_to_install(tiny_onnx, tmp_path):
    pytest.importorskip("pyvirtualcam")
    try:
        import pyvirtualcam

        pyvirtualcam.Camera(64, 48, 10).close()
        pytest.skip("this machine has a virtual camera device")
    except RuntimeError:
        pass
    clip = make_video(tmp_path / "clip.mp4", audio=False)
    result = segedge("run", clip, "--live", "--virtual-cam", "--engine", tiny_onnx, "--quiet")
    assert_one_line_error(result, "no virtual camera", "v4l2loopback", "OBS")


def read_part(response) -> bytes:
    """One JPEG of a multipart/x-mixed-replace stream."""
    length = None
    for _ in range(10):  # boundary, headers, blank line
        line = response.readline().strip()
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
        elif not line and length is not None:
            return response.read(length)
    raise AssertionError("no frame in the MJPEG stream")


def is_gray(jpeg: bytes) -> bool:
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR).astype(int)
    return np.abs(image - image.mean(axis=2, keepdims=True)).max() <= 8  # JPEG leaves a little chroma noise


def test_the_preview_streams_frames_and_switches_effect_live(tiny_onnx, tmp_path):
    clip = make_video(tmp_path / "clip.mp4", audio=False, size="160x120")  # testsrc: colour bars
    stats, failures = Stats(), []
    with Preview(Effect("blur"), stats) as preview, LiveVideo(clip, loop=True) as source:
        def run():
            try:
                stream(source, Segmenter(tiny_onnx), preview, Effect("blur"), stats=stats, controls=preview.controls)
            except BaseException as exc:  # reported by the test thread
                failures.append(exc)

        worker = threading.Thread(target=run, daemon=True)
        worker.start()
        page = urllib.request.urlopen(preview.url, timeout=WAIT).read().decode()
        assert "stream.mjpg" in page and "/control" in page and preview.url.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(preview.url + "stream.mjpg", timeout=WAIT) as frames:
            assert not any(is_gray(read_part(frames)) for _ in range(3))  # blurred colour frames
            answer = urllib.request.urlopen(preview.url + "control", data=b"effect=mask&blur_strength=9", timeout=WAIT)
            assert json.load(answer)["effect"] == "mask"
            gray = [is_gray(read_part(frames)) for _ in range(30)]
        assert True in gray and all(gray[gray.index(True):])  # switched, and stays switched
        numbers = json.load(urllib.request.urlopen(preview.url + "stats", timeout=WAIT))
        assert numbers["frames"] > 0 and numbers["stage_ms"]["inference"] > 0 and numbers["blur_strength"] == 9
        with pytest.raises(urllib.error.HTTPError) as bad:
            urllib.request.urlopen(preview.url + "control", data=b"effect=sepia", timeout=WAIT)
        assert bad.value.code == 400
        preview.stop()
        worker.join(WAIT)
    assert not worker.is_alive() and not failures


def test_the_preview_switches_edge_cleaning_for_the_next_frames(people):
    """The page's clean-edges box: the frames after the switch use foreground colour estimation, those before do
    not (a live source's default); a real portrait and the live model, so the matte has a soft edge."""
    photo = sorted((people / "val-portraits" / "images").iterdir())[0]
    segmenter, effect = Segmenter("fast"), Effect("replace", "blue", clean_edges=False)
    switch_after = 2

    class Switching(Sink):  # records each frame and ticks the box on the page after `switch_after` of them
        def __init__(self, preview):
            self.preview, self.images = preview, []

        def write(self, image, frame):
            self.images.append(image)
            if len(self.images) == switch_after:
                urllib.request.urlopen(self.preview.url + "control", data=b"effect=replace&clean_edges=true",
                                       timeout=WAIT)

    with Preview(effect, Stats()) as preview:
        page = urllib.request.urlopen(preview.url, timeout=WAIT).read().decode()
        assert 'name="clean_edges" type="checkbox" >' in page  # unticked: off for live sources
        sink = Switching(preview)
        stream(Images([photo] * 5), segmenter, sink, effect, controls=preview.controls)
        assert json.load(urllib.request.urlopen(preview.url + "stats", timeout=WAIT))["clean_edges"] is True
        with pytest.raises(urllib.error.HTTPError) as bad:
            urllib.request.urlopen(preview.url + "control", data=b"clean_edges=maybe", timeout=WAIT)
        assert bad.value.code == 400
    rgb = cv2.cvtColor(cv2.imread(str(photo)), cv2.COLOR_BGR2RGB)
    matte = alpha_to_uint8(segmenter.mask(rgb))
    before, after = effect(rgb, matte), replace(effect, clean_edges=True)(rgb, matte)
    assert not np.array_equal(before, after)
    for index, image in enumerate(sink.images):
        assert np.array_equal(image, before if index < switch_after else after), index


def test_run_preview_prints_its_url(tiny_onnx, tmp_path):
    import subprocess

    from helpers import SEGEDGE

    clip = make_video(tmp_path / "clip.mp4", audio=False, seconds=3)
    with subprocess.Popen([*SEGEDGE, "run", str(clip), "--live", "--preview", "--engine", str(tiny_onnx), "--quiet"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as process:
        try:
            line = process.stdout.readline()
            assert re.fullmatch(r"preview: http://127\.0\.0\.1:\d+/ \(Ctrl-C to stop\)\n", line), line
        finally:
            assert process.wait(timeout=60) == 0, process.stderr.read()  # the file ends after 3 s
