"""`segedge run --ray` and `segedge serve --ray` on a real local Ray with 2 CPUs, no mocks.

One Ray runtime per module (starting one costs seconds): the batch run connects to it in-process, the server in its
own process through --address, so both "a Ray already there" paths are the ones tested here; starting a local Ray
is the same `ray.init` without an address.
"""

import filecmp
import os
import shutil
import subprocess
import urllib.request

import cv2
import numpy as np
import pytest
from helpers import assert_one_line_error, segedge_in_process

pytest.importorskip("ray.data")
pytest.importorskip("ray.serve")
pytest.importorskip("fastapi")

from segedge.ray_batch import list_inputs, output_folder  # noqa: E402
from segedge.ray_cluster import gpus_per_worker, warn_if_short_of_gpus  # noqa: E402
from segedge.remote import Remote  # noqa: E402
from segedge.serve.local import local_server  # noqa: E402

PHOTOS = 6
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # Ray Data's own, about its own settings


@pytest.fixture(scope="module")
def ray_address():
    import ray

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


@pytest.fixture
def photos(people, tmp_path):
    """Six real portraits and one corrupt JPEG in a folder."""
    folder = tmp_path / "photos"
    folder.mkdir()
    for source in sorted((people / "val-portraits" / "images").iterdir())[:PHOTOS]:
        shutil.copy(source, folder / source.name)
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    return folder


def test_ray_run_matches_plain_run_keeps_going_past_a_bad_file_and_resumes(ray_address, photos, tmp_path):
    plain, on_ray = tmp_path / "plain", tmp_path / "on_ray"
    assert segedge_in_process("run", photos, "-o", plain, "--quiet").returncode == 0

    first = segedge_in_process("run", photos, "--ray", "--actors", "2", "-o", on_ray, "--quiet")
    assert first.returncode == 1, first.stderr  # an input failed: said in the exit code
    assert f"{PHOTOS} done, 0 skipped, 1 failed" in first.stdout
    assert "broken.jpg" in first.stderr and "Traceback" not in first.stderr
    names = sorted(p.name for p in plain.iterdir())
    assert len(names) == PHOTOS and sorted(p.name for p in on_ray.iterdir()) == names
    _, mismatch, errors = filecmp.cmpfiles(plain, on_ray, names, shallow=False)
    assert not mismatch and not errors, (mismatch, errors)

    (on_ray / names[0]).unlink()  # resume: only the missing output is made again (and the bad file fails again)
    again = segedge_in_process("run", photos, "--ray", "-o", on_ray, "--quiet")
    assert f"1 done, {PHOTOS - 1} skipped, 1 failed" in again.stdout, again.stdout + again.stderr
    assert "skipped (output exists)" in again.stdout
    assert filecmp.cmp(plain / names[0], on_ray / names[0], shallow=False)


def test_ray_run_reads_and_writes_through_pyarrow_uris_like_the_plain_run(ray_address, photos, tmp_path):
    """file:// goes the way of s3:// and gs:// (pyarrow.fs): a list file URI naming photos by relative path and by
    URI, -o a URI; the same bytes as a plain run, a corrupt photo fails alone, a rerun resumes."""
    names = sorted(p.name for p in photos.iterdir() if p.name != "broken.jpg")[:2]  # two are enough, and quick
    listing, out, plain = tmp_path / "inputs.txt", tmp_path / "out", tmp_path / "plain"
    listing.write_text(f"photos/{names[0]}\nphotos/broken.jpg\n{(photos / names[1]).as_uri()}\n")
    two = tmp_path / "two"
    two.mkdir()
    for name in names:
        shutil.copy(photos / name, two / name)
    assert segedge_in_process("run", two, "-o", plain, "--quiet").returncode == 0

    first = segedge_in_process("run", listing.as_uri(), "--ray", "-o", out.as_uri(), "--quiet")
    assert first.returncode == 1, first.stderr
    assert f"2 done, 0 skipped, 1 failed -> {out.as_uri()}" in first.stdout, first.stdout + first.stderr
    assert f"failed: {(photos / 'broken.jpg').as_uri()}: cannot decode image" in first.stderr
    assert "Traceback" not in first.stderr
    assert sorted(p.name for p in out.iterdir()) == names  # no temp files left beside them
    _, mismatch, errors = filecmp.cmpfiles(plain, out, names, shallow=False)
    assert not mismatch and not errors, (mismatch, errors)

    (out / names[1]).unlink()
    again = segedge_in_process("run", listing.as_uri(), "--ray", "-o", out.as_uri(), "--quiet")
    assert "1 done, 1 skipped, 1 failed" in again.stdout, again.stdout + again.stderr
    assert filecmp.cmp(plain / names[1], out / names[1], shallow=False)


def test_uri_sources_list_like_local_ones(photos, tmp_path):
    """A folder, a glob and a list file given as URIs list what their local paths list, and the default output
    lies beside them under the same name."""
    for local in (photos, photos / "*.jpg"):
        uri = f"file://{local}"
        assert [str(p) for p in list_inputs(uri)] == [p.as_uri() for p in list_inputs(str(local))]
        assert str(output_folder(uri, None, "mask")) == (tmp_path / "photos_mask").as_uri()
    listing = tmp_path / "inputs.txt"
    listing.write_text("# a comment\n\nphotos/broken.jpg\nfile:///elsewhere/clip.mp4\n")
    assert [str(p) for p in list_inputs(listing.as_uri())] == [(photos / "broken.jpg").as_uri(),
                                                                "file:///elsewhere/clip.mp4"]
    assert str(output_folder(listing.as_uri(), None, "blur")) == (tmp_path / "inputs_blur").as_uri()


def test_remote_write_is_atomic(tmp_path):
    target = Remote.from_uri((tmp_path / "out.png").as_uri())
    target.write_atomic(lambda stream: stream.write(b"done"))
    assert (tmp_path / "out.png").read_bytes() == b"done"

    def fail_halfway(stream):
        stream.write(b"half")
        raise RuntimeError("the connection dropped")

    with pytest.raises(RuntimeError):
        target.write_atomic(fail_halfway)
    assert [p.name for p in tmp_path.iterdir()] == ["out.png"]  # the old file untouched, no temp file left
    assert (tmp_path / "out.png").read_bytes() == b"done"


@pytest.mark.parametrize("source, output, says", [
    ("nosuch://bucket/photos", None, "Unrecognized filesystem type"),
    ("{photos}", "nosuch://bucket/out", "Unrecognized filesystem type"),
    ("hdfs://namenode:8020/photos", None, "cannot open the filesystem of hdfs://namenode:8020"),
    ("file:///tmp/*/photos/*.jpg", None, "wildcards may stand in the file name only"),
])
def test_bad_uris_are_one_line_errors(photos, source, output, says):
    """Found before Ray starts: an unknown scheme, a filesystem whose library is missing (no libhdfs here)."""
    args = ["run", source.format(photos=photos), "--ray", "--quiet"] + (["-o", output] if output else [])
    assert_one_line_error(segedge_in_process(*args), says)


@pytest.mark.parametrize("engine, backend, gpus", [
    (None, "auto", 0), ("default", "cpu", 0), ("model.onnx", "auto", 0), ("model.pth", "auto", 0),
    (None, "cuda", 1), ("model.onnx", "tensorrt", 1), ("model.pth", "cuda", 1), ("model.trt", "auto", 1),
    ("/models/model.engine", "auto", 1), ("model.plan", "tensorrt", 1),
])
def test_actors_reserve_a_gpu_when_their_model_runs_on_one(engine, backend, gpus):
    assert gpus_per_worker(engine, backend) == gpus


def test_too_few_gpus_for_the_actors_is_said(caplog):
    assert warn_if_short_of_gpus(2, 1, available=1.0)
    assert "wait until it has them" in caplog.text
    assert not warn_if_short_of_gpus(2, 1, available=2.0) and not warn_if_short_of_gpus(4, 0, available=0.0)


def test_ray_serve_answers_with_the_person_masked(ray_address, people):
    photo = sorted((people / "val-portraits" / "images").iterdir())[0].read_bytes()
    with local_server("--ray", "--address", ray_address, "--workers", "1", timeout=90) as url:
        request = urllib.request.Request(f"{url}/segment?effect=mask", data=photo, method="POST",
                                         headers={"Content-Type": "image/jpeg"})
        with urllib.request.urlopen(request, timeout=30) as reply:
            assert reply.headers["content-type"] == "image/png"
            mask = cv2.imdecode(np.frombuffer(reply.read(), np.uint8), cv2.IMREAD_UNCHANGED)
    height, width = cv2.imdecode(np.frombuffer(photo, np.uint8), cv2.IMREAD_COLOR).shape[:2]
    assert mask.shape == (height, width)
    assert 0.05 < (mask > 127).mean() < 0.95  # a portrait: the person is a good part of the picture, not all of it


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg CLI needed to make test videos")
@pytest.mark.parametrize("as_uri", [False, True], ids=["path", "file-uri"])
def test_ray_run_of_a_list_with_videos_matches_plain_runs(ray_address, people, tmp_path, as_uri):
    """A text file listing a photo and two videos (one task each): the same files as `segedge run` makes of each;
    given as a URI, the videos go through local temp copies and the outputs beside the list are URIs too."""
    from helpers import make_video

    photo = shutil.copy(sorted((people / "val-portraits" / "images").iterdir())[0], tmp_path / "photo.jpg")
    videos = [make_video(tmp_path / "clip.mp4"), make_video(tmp_path / "quiet.mkv", audio=False)]
    listing = tmp_path / "inputs.txt"
    listing.write_text("# inputs\nphoto.jpg\nclip.mp4\n\nquiet.mkv\nmissing.mp4\n")
    plain = tmp_path / "plain"
    plain.mkdir()
    for source in (photo, *videos):
        assert segedge_in_process("run", source, "-o", plain, "--quiet").returncode == 0

    result = segedge_in_process("run", listing.as_uri() if as_uri else listing, "--ray", "--quiet")
    on_ray = tmp_path / "inputs_blur"
    assert "3 done, 0 skipped, 1 failed" in result.stdout, result.stdout + result.stderr
    assert "missing.mp4" in result.stderr
    assert sorted(p.name for p in on_ray.iterdir()) == ["clip_blur.mp4", "photo.jpg", "quiet_blur.mkv"]
    for ours, theirs in (("clip_blur.mp4",) * 2, ("photo.jpg", "photo_blur.jpg")):
        assert filecmp.cmp(plain / theirs, on_ray / ours, shallow=False), ours  # a photo keeps its name, as in a folder
    # Matroska writes a random segment UID, so two plain runs differ too: the frames are what must match
    assert frame_hashes(plain / "quiet_blur.mkv") == frame_hashes(on_ray / "quiet_blur.mkv")


def frame_hashes(video) -> list[str]:
    result = subprocess.run(["ffmpeg", "-v", "error", "-i", str(video), "-f", "framemd5", "-"], capture_output=True,
                            text=True, check=True)
    return [line for line in result.stdout.splitlines() if not line.startswith("#")]


@pytest.mark.slow  # starts Ray Serve's controller and proxy: ~10 s
def test_ray_serve_on_a_port_in_use_is_a_one_line_error(ray_address):
    import socket

    from helpers import SEGEDGE

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run([*SEGEDGE, "serve", "--ray", "--address", ray_address, "--port", str(port)],
                                capture_output=True, text=True, timeout=180)
    assert_one_line_error(result, f"Ray Serve did not start on 127.0.0.1:{port}")
