"""Issue #14: bad media, signals, full disks and concurrent runs. Every failure is one line with exit code 2 (143 for
SIGTERM), nothing half-written is left, and nothing is lost without a warning."""

import shutil
import signal
import subprocess
import time

import pytest
from helpers import SEGEDGE, assert_one_line_error, ffprobe, make_video, segedge_in_process

pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg CLI needed to make test videos")


def ffmpeg(*args):
    subprocess.run(["ffmpeg", "-v", "error", "-y", *map(str, args)], check=True)


def video_pts(path):
    """Presentation times (s) of the video packets, sorted."""
    out = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "packet=pts_time",
                          "-of", "csv=p=0", str(path)], capture_output=True, text=True, check=True).stdout
    return sorted(float(t) for t in out.split())


def leftovers(folder):
    return [p.name for p in folder.rglob("*") if "partial" in p.name]


def make_vfr_video(path):
    """A phone-style variable-frame-rate clip: 1 s at 30 frames/s, then 1 s at 15 frames/s, with audio."""
    source = make_video(path.with_name("cfr.mp4"), audio=True, seconds=2)
    ffmpeg("-i", source, "-filter_complex", "[0:v]trim=0:1,setpts=PTS-STARTPTS,fps=30[a];"
           "[0:v]trim=1:2,setpts=PTS-STARTPTS,fps=15[b];[a][b]concat=n=2:v=1:a=0[v]", "-map", "[v]", "-map", "0:a",
           "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "copy", "-fps_mode", "vfr", path)
    return path


# 1. Variable frame rate


@pytest.mark.parametrize("suffix", [".mp4", ".mkv", ".mov", ".webm"])
def test_variable_frame_rate_video_keeps_every_timestamp(tiny_onnx, tmp_path, suffix):
    source = make_vfr_video(tmp_path / "phone.mp4")
    out = tmp_path / f"out{suffix}"
    result = segedge_in_process("run", source, "--engine", tiny_onnx, "-o", out, "--quiet")
    assert result.returncode == 0, result.stderr
    before, after = video_pts(source), video_pts(out)
    assert len(after) == len(before) == 45 and len(set(after)) == 45
    steps_before = [b - a for a, b in zip(before, before[1:])]
    steps_after = [b - a for a, b in zip(after, after[1:])]
    assert steps_after == pytest.approx(steps_before, abs=0.002)  # mkv/webm store milliseconds
    duration = ffprobe(source, "format=duration")["format"]["duration"]
    assert float(ffprobe(out, "format=duration")["format"]["duration"]) == pytest.approx(float(duration), abs=0.05)
    def audio_lead(path):  # audio start relative to video start: in sync when it is the same as the input's
        video, audio = (float(ffprobe(path, "stream=start_time", stream=s)["streams"][0]["start_time"])
                        for s in ("v:0", "a:0"))
        return audio - video

    assert audio_lead(out) == pytest.approx(audio_lead(source), abs=0.03)


def test_variable_frame_rate_to_avi_is_a_clear_error_before_any_work(tiny_onnx, tmp_path):
    source = make_vfr_video(tmp_path / "phone.mp4")
    result = segedge_in_process("run", source, "--engine", tiny_onnx, "-o", tmp_path / "out.avi", "--quiet")
    assert_one_line_error(result, "variable frame rate", "phone.mp4", ".mkv")
    assert not (tmp_path / "out.avi").exists() and not leftovers(tmp_path)


# 2. SIGTERM and SIGINT


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_and_sigint_leave_no_temp_file(tiny_onnx, tmp_path, signum):
    source = make_video(tmp_path / "long.mp4", audio=True, seconds=30, size="160x120")
    process = subprocess.Popen([*SEGEDGE, "run", str(source), "--engine", str(tiny_onnx), "--quiet"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    while process.poll() is None and not leftovers(tmp_path):
        time.sleep(0.01)  # wait until the temporary output exists, then stop the run mid-video
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=60)
    if process.returncode == 0:
        pytest.skip("the video finished before the signal arrived")
    assert process.returncode == 128 + signum  # the shell convention: 143 for SIGTERM, 130 for Ctrl-C
    assert "Traceback" not in stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["long.mp4"]


# 3. Concurrent runs to one output


def test_concurrent_runs_to_one_output_each_write_their_own_file(tiny_onnx, tmp_path):
    from segedge.media import atomic_output

    with atomic_output(tmp_path / "x.mp4") as first, atomic_output(tmp_path / "x.mp4") as second:
        assert first != second and first.suffix == second.suffix == ".mp4"
        first.write_bytes(b"first")
        second.write_bytes(b"second")
    assert (tmp_path / "x.mp4").read_bytes() == b"first"  # the last rename wins
    (tmp_path / "x.mp4").unlink()
    source = make_video(tmp_path / "clip.mp4", audio=True, seconds=3, size="160x120")
    out = tmp_path / "out.mp4"
    runs = [subprocess.Popen([*SEGEDGE, "run", str(source), "--engine", str(tiny_onnx), "--effect", effect,
                              "-o", str(out), "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for effect in ("blur", "mask")]
    results = [(run.wait(timeout=120), run.stderr.read()) for run in runs]
    assert [code for code, _ in results] == [0, 0], results
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4", "out.mp4"]
    assert ffprobe(out, "stream=nb_read_frames")["streams"][0]["nb_read_frames"] == "30"  # one whole video
