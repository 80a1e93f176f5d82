"""Issue #14: bad media, signals, full disks and concurrent runs. Every failure is one line with exit code 2 (143 for
SIGTERM), nothing half-written is left, and nothing is lost without a warning."""

import contextlib
import functools
import json
import resource
import shutil
import signal
import subprocess
import time

import cv2
import numpy as np
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
    assert np.diff(after) == pytest.approx(np.diff(before), abs=0.002)  # mkv/webm store milliseconds
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
    steady = segedge_in_process("run", tmp_path / "cfr.mp4", "--engine", tiny_onnx, "-o", tmp_path / "out.avi")
    assert steady.returncode == 0, steady.stderr  # the constant-rate clip it was cut from still goes to AVI
    assert ffprobe(tmp_path / "out.avi", "stream=nb_read_frames")["streams"][0]["nb_read_frames"] == "20"


# 2. SIGTERM and SIGINT


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_and_sigint_leave_no_temp_file(tiny_onnx, tmp_path, signum):
    source = make_video(tmp_path / "long.mp4", audio=True, seconds=120, size="160x120")  # outlasts the poll
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


# 4. Disk full, and 5. a read-only location


@contextlib.contextmanager
def file_size_limit(limit):
    """RLIMIT_FSIZE on this process: a write past `limit` bytes fails with EFBIG (Python ignores SIGXFSZ)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))


@pytest.fixture
def small_disk(tmp_path):
    """(folder, limit): a real 200 kB tmpfs where this user may mount one (ENOSPC, what users hit), else an ordinary
    folder and a 200 kB file size limit (EFBIG), which the runtime handles the same way."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=200k", "tmpfs", str(disk)],
                             capture_output=True).returncode == 0
    try:
        yield disk, (contextlib.nullcontext if mounted else functools.partial(file_size_limit, 200_000))
    finally:
        if mounted:
            subprocess.run(["umount", str(disk)], check=True)


def noise_image(path, size):
    cv2.imwrite(str(path), np.random.default_rng(0).integers(0, 256, (size, size, 3), dtype=np.uint8))
    return path


def test_full_disk_image_and_video_are_one_line_errors_without_partial_files(tiny_onnx, tmp_path, small_disk):
    disk, limit = small_disk
    image = noise_image(tmp_path / "noise.png", 400)  # ~480 kB as PNG: does not fit
    video = tmp_path / "noise.mp4"
    ffmpeg("-f", "lavfi", "-i", "nullsrc=s=320x240:d=2,geq=random(1)*255:128:128", "-f", "lavfi", "-i",
           "sine=duration=2", "-c:v", "libx264", "-crf", "0", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", video)
    for source, out in ((image, disk / "noise.png"), (video, disk / "noise.mp4")):
        with limit():
            result = segedge_in_process("run", source, "--engine", tiny_onnx, "--effect", "remove", "-o", out,
                                        "--quiet")
        assert_one_line_error(result, f"cannot write {out}:")
        assert result.returncode == 2 and "partial" not in result.stderr
        assert list(disk.iterdir()) == []


def test_full_disk_in_a_folder_run_says_how_many_images_were_written(tiny_onnx, tmp_path, small_disk):
    disk, limit = small_disk
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("a", "b", "c"):
        noise_image(photos / f"{name}.png", 48)
    noise_image(photos / "d.png", 400)
    with limit():
        result = segedge_in_process("run", photos, "--engine", tiny_onnx, "--effect", "remove", "-o", disk / "out",
                                    "--quiet")
    assert_one_line_error(result, "d.png", "3 of 4 images were written")
    assert sorted(p.name for p in (disk / "out").iterdir()) == ["a.png", "b.png", "c.png"]


@pytest.fixture
def read_only_dir(tmp_path):
    """A folder nobody may write to: a read-only tmpfs where this user may mount one (root ignores file modes),
    else a folder with mode 0555."""
    folder = tmp_path / "ro"
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(folder)],
                             capture_output=True).returncode == 0
    if not mounted:
        folder.chmod(0o555)
    try:
        yield folder
    finally:
        if mounted:
            subprocess.run(["umount", str(folder)], check=True)
        folder.chmod(0o755)


def test_folder_output_in_a_read_only_location_is_one_line_error(tiny_onnx, tmp_path, read_only_dir):
    photos = tmp_path / "photos"
    photos.mkdir()
    noise_image(photos / "a.png", 48)
    out = read_only_dir / "newdir"
    result = segedge_in_process("run", photos, "--engine", tiny_onnx, "-o", out, "--quiet")
    assert_one_line_error(result, f"cannot create output folder {out}")
    image = segedge_in_process("run", photos / "a.png", "--engine", tiny_onnx, "-o", read_only_dir / "a.png")
    assert_one_line_error(image, "not writable")
    assert list(read_only_dir.iterdir()) == []


# 8. Fuzzed media: an audio codec FFmpeg cannot identify; encoder and muxer errors name the user's output


def test_audio_track_of_unknown_codec_is_dropped_with_a_warning(tiny_onnx, tmp_path):
    pcm = tmp_path / "pcm.mkv"
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=96x64:rate=10:duration=1", "-f", "lavfi", "-i", "sine=duration=1",
           "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "pcm_s16le", pcm)
    source = tmp_path / "unknown.mkv"  # the codec id a corrupted header could hold: FFmpeg knows no such codec
    source.write_bytes(pcm.read_bytes().replace(b"A_PCM/INT/LIT", b"A_ZZZ/INT/LIT"))
    out = tmp_path / "out.mp4"
    result = segedge_in_process("run", source, "--engine", tiny_onnx, "-o", out, "--quiet")
    assert result.returncode == 0, result.stderr
    assert "audio track 1 of" in result.stderr and "left out" in result.stderr
    assert ffprobe(out, "stream=nb_read_frames")["streams"][0]["nb_read_frames"] == "10"
    assert ffprobe(out, "stream=codec_name", stream="a")["streams"] == []


def test_encoder_and_muxer_errors_name_the_output_never_the_temp_file(tiny_onnx, tmp_path):
    """Frames with repeated timestamps (which Matroska stores) are refused by the MP4 muxer mid-run."""
    source = tmp_path / "repeated.mkv"
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=96x64:rate=10:duration=1", "-vf", "setpts=floor(N/2)*0.1/TB",
           "-fps_mode", "passthrough", "-c:v", "libx264", "-bf", "0", "-pix_fmt", "yuv420p", source)
    out = tmp_path / "out.mp4"
    result = segedge_in_process("run", source, "--engine", tiny_onnx, "-o", out, "--quiet")
    assert_one_line_error(result, f"video {source} -> {out}: ")
    assert result.returncode == 2 and ".partial" not in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["repeated.mkv"]


# 9. Silent losses


def test_truncated_video_warns_how_much_was_read(tiny_onnx, tmp_path):
    whole = make_video(tmp_path / "whole.mp4", audio=False, seconds=3, size="160x120")
    faststart = tmp_path / "faststart.mp4"  # index at the front: the header still declares all 30 frames
    ffmpeg("-i", whole, "-c", "copy", "-movflags", "+faststart", faststart)
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(faststart.read_bytes()[:faststart.stat().st_size // 2])
    result = segedge_in_process("run", cut, "--engine", tiny_onnx, "-o", tmp_path / "out.mp4", "--quiet")
    assert result.returncode == 0, result.stderr
    assert "cut.mp4 ended early: read" in result.stderr and "of the 30 frames it declares" in result.stderr
    whole_run = segedge_in_process("run", whole, "--engine", tiny_onnx, "-o", tmp_path / "out2.mp4", "--quiet")
    assert "ended early" not in whole_run.stderr


@pytest.mark.parametrize("suffix,codec", [(".mp4", "aac"), (".webm", "opus")])
def test_every_audio_track_is_kept(tiny_onnx, tmp_path, suffix, codec):
    source = tmp_path / "two_tracks.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=96x64:rate=10:duration=1", "-f", "lavfi", "-i",
           "sine=frequency=440:duration=1", "-f", "lavfi", "-i", "sine=frequency=880:duration=1", "-map", "0:v",
           "-map", "1:a", "-map", "2:a", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", source)
    out = tmp_path / f"out{suffix}"
    result = segedge_in_process("run", source, "--engine", tiny_onnx, "-o", out, "--quiet")
    assert result.returncode == 0, result.stderr
    tracks = ffprobe(out, "stream=codec_name,duration", stream="a")["streams"]
    assert [t["codec_name"] for t in tracks] == [codec, codec]


def test_remove_keeps_an_rgba_input_own_transparency(tiny_onnx, tmp_path):
    rgba = np.full((64, 64, 4), 200, np.uint8)
    rgba[:, :32, 3] = 0  # the left half is already transparent
    cv2.imwrite(str(tmp_path / "logo.png"), rgba)
    result = segedge_in_process("run", tmp_path / "logo.png", "--engine", tiny_onnx, "--effect", "remove",
                                "-o", tmp_path / "cut.png", "--quiet")
    assert result.returncode == 0, result.stderr
    alpha = cv2.imread(str(tmp_path / "cut.png"), cv2.IMREAD_UNCHANGED)[..., 3]
    assert alpha[:, :32].max() == 0 and alpha[:, 32:].max() > 0


@pytest.mark.parametrize("threads", ["-1", "0"])
def test_threads_below_one_is_a_one_line_error(tiny_onnx, tmp_path, threads):
    image = noise_image(tmp_path / "a.png", 32)
    result = segedge_in_process("run", image, "--engine", tiny_onnx, "--threads", threads, "-o", tmp_path / "b.png")
    assert_one_line_error(result, f"--threads {threads}")
    result = segedge_in_process("bench", "--engine", tiny_onnx, "--backends", "onnxruntime", "--threads", threads)
    assert_one_line_error(result, f"--threads {threads}")


def test_threads_beyond_the_cores_are_bounded(tiny_onnx):
    import os

    from segedge.runtime import Segmenter

    segmenter = Segmenter(tiny_onnx, threads=1000)
    options = segmenter.backend.session.get_session_options()
    assert options.intra_op_num_threads == os.cpu_count()


# 6. Models whose spec does not match their graph, or whose spec is malformed


def onnx_with(source, target, spec_text=None, channels=None):
    """A copy of an ONNX model with its segedge spec replaced by `spec_text`, or a 1-op model with `channels`
    input channels and the source's spec."""
    import onnx
    from onnx import TensorProto, helper

    model = onnx.load(str(source))
    if channels is not None:
        image = helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, channels, 64, 64])
        logits = helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 1, 64, 64])
        graph = helper.make_graph([helper.make_node("ReduceMean", ["image"], ["logits"], axes=[1])], "g", [image],
                                  [logits])
        spec_props = list(model.metadata_props)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        model.ir_version = 8
        model.metadata_props.extend(spec_props)
    for prop in model.metadata_props:
        if prop.key == "segedge.spec" and spec_text is not None:
            prop.value = spec_text
    onnx.save(model, str(target))
    return target


def spec_with(tiny_onnx, **changes):
    from segedge.model_files import read_spec

    return json.dumps({**read_spec(tiny_onnx).to_dict(), **changes})


@pytest.mark.parametrize("case", ["input size", "dynamic", "channels", "malformed size", "malformed threshold",
                                  "not an object"])
def test_models_that_do_not_match_their_spec_are_refused_when_loaded(tiny_onnx, tmp_path, case):
    model = tmp_path / "model.onnx"
    if case == "channels":
        onnx_with(tiny_onnx, model, channels=1)
    else:
        text = {"input size": spec_with(tiny_onnx, input_size=[128, 128]),
                "dynamic": spec_with(tiny_onnx, dynamic=True),
                "malformed size": spec_with(tiny_onnx, input_size="abc"),
                "malformed threshold": spec_with(tiny_onnx, threshold="high"),
                "not an object": "[1, 2]"}[case]
        onnx_with(tiny_onnx, model, spec_text=text)
    photos = tmp_path / "photos"
    photos.mkdir()
    noise_image(photos / "a.png", 32)
    result = segedge_in_process("run", photos, "--engine", model, "-o", tmp_path / "out", "--quiet")
    assert_one_line_error(result, str(model))
    assert not (tmp_path / "out").exists()


# 7. Export: NaN/Inf weights or outputs, and a checkpoint whose weights are not a state dict


@pytest.mark.parametrize("case", ["nan weight", "inf outputs", "weights as a list", "malformed spec"])
def test_export_refuses_non_finite_models_and_foreign_checkpoints(tiny_checkpoint, tmp_path, case):
    torch = pytest.importorskip("torch")
    state = torch.load(tiny_checkpoint, map_location="cpu", weights_only=False)
    if case == "nan weight":
        state["model"]["classifier.weight"][0, 0] = float("nan")
    elif case == "inf outputs":  # finite weights whose activations overflow float32 a few layers deep
        for tensor in state["model"].values():
            if tensor.ndim == 4:
                tensor.mul_(1e10)
    elif case == "weights as a list":
        state["model"] = list(state["model"].values())
    else:
        state["spec"]["input_size"] = "abc"
    checkpoint, out = tmp_path / "bad.pth", tmp_path / "bad.onnx"
    torch.save(state, checkpoint)
    result = segedge_in_process("export", checkpoint, "-o", out)
    expected = {"nan weight": (str(checkpoint), "NaN or Inf", "classifier.weight"),
                "inf outputs": (str(out), "NaN or Inf in the logits"),
                "weights as a list": (str(checkpoint), "list"),
                "malformed spec": (str(checkpoint), "malformed")}[case]
    assert_one_line_error(result, *expected)
    assert result.returncode == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.pth"]


# The fuzz: mutated images and videos end in success or a one-line error, never a traceback, hang or leftover


def mutants(data: bytes, rng, count: int):
    """Reproducible damage to one file: random byte flips, a truncation, or a zeroed run, in turn."""
    for index in range(count):
        damaged = bytearray(data)
        if index % 3 == 0:
            for offset in rng.integers(0, len(data), rng.integers(1, 17)):
                damaged[offset] ^= 1 << int(rng.integers(0, 8))
        elif index % 3 == 1:
            del damaged[int(rng.integers(1, len(data))):]
        else:
            start = int(rng.integers(0, len(data)))
            end = min(len(data), start + int(rng.integers(16, 513)))
            damaged[start:end] = bytes(end - start)
        yield bytes(damaged)


def fuzz_sources(folder, people):
    photo = cv2.imread(str(sorted((people / "val-portraits" / "images").iterdir())[0]))
    cv2.imwrite(str(folder / "photo.jpg"), cv2.resize(photo, (96, 128)))
    clip = make_video(folder / "clip.mp4", audio=True, seconds=1)
    ffmpeg("-i", clip, "-an", "-c", "copy", "-movflags", "+faststart", folder / "faststart.mp4")
    return [folder / "photo.jpg", clip, folder / "faststart.mp4"]


def fuzz(tiny_onnx, people, tmp_path, per_source: int, seed: int = 14) -> dict:
    """Run every mutant through `segedge run`; returns how many succeeded and how many were one-line errors."""
    import faulthandler

    sources, work = tmp_path / "sources", tmp_path / "work"
    sources.mkdir()
    work.mkdir()
    rng, counts = np.random.default_rng(seed), {"ok": 0, "error": 0}
    faulthandler.dump_traceback_later(30 + 3 * per_source, exit=True)  # a hang fails the run, with stacks
    try:
        for source in fuzz_sources(sources, people):
            for index, data in enumerate(mutants(source.read_bytes(), rng, per_source)):
                damaged = work / f"{index}{source.suffix}"
                damaged.write_bytes(data)
                out = work / f"out{index}{'.mkv' if index % 2 else source.suffix}"
                result = segedge_in_process("run", damaged, "--engine", tiny_onnx, "-o", out, "--quiet")
                assert result.returncode in (0, 2), (damaged, result)
                if result.returncode:
                    assert_one_line_error(result)
                    assert not out.exists()
                counts["ok" if result.returncode == 0 else "error"] += 1
                assert set(work.iterdir()) <= {damaged, out}, f"files left behind by {damaged}"
                for path in work.iterdir():
                    path.unlink()
    finally:
        faulthandler.cancel_dump_traceback_later()
    return counts


def test_fuzzed_images_and_videos_end_in_success_or_one_line_error(tiny_onnx, people, tmp_path):
    counts = fuzz(tiny_onnx, people, tmp_path, per_source=12)
    assert counts["ok"] + counts["error"] == 36
    print(f"fuzz: {counts}")


@pytest.mark.slow
def test_large_fuzz(tiny_onnx, people, tmp_path):
    """Recorded (2-core EPYC, seed 1400): 198 succeeded, 252 one-line errors, nothing else; 155 s."""
    counts = fuzz(tiny_onnx, people, tmp_path, per_source=150, seed=1400)
    print(f"fuzz: {counts}")
    assert counts["ok"] + counts["error"] == 450
