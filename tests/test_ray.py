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
from helpers import segedge_in_process

pytest.importorskip("ray.data")
pytest.importorskip("ray.serve")
pytest.importorskip("fastapi")

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
def test_ray_run_of_a_list_with_videos_matches_plain_runs(ray_address, people, tmp_path):
    """A text file listing a photo and two videos (one task each): the same files as `segedge run` makes of each."""
    from helpers import make_video

    photo = shutil.copy(sorted((people / "val-portraits" / "images").iterdir())[0], tmp_path / "photo.jpg")
    videos = [make_video(tmp_path / "clip.mp4"), make_video(tmp_path / "quiet.mkv", audio=False)]
    listing = tmp_path / "inputs.txt"
    listing.write_text("# inputs\nphoto.jpg\nclip.mp4\n\nquiet.mkv\nmissing.mp4\n")
    plain = tmp_path / "plain"
    plain.mkdir()
    for source in (photo, *videos):
        assert segedge_in_process("run", source, "-o", plain, "--quiet").returncode == 0

    result = segedge_in_process("run", listing, "--ray", "--quiet")
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
