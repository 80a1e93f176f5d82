"""`segedge run` end to end through the real CLI: images of every kind, folders, videos with and without audio,
rotation, bad input, and an environment without torch."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers import assert_one_line_error, ffprobe, make_video, segedge, segedge_in_process

from segedge.effects import Effect, alpha_to_uint8
from segedge.runtime import Segmenter

pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg CLI needed to make test videos")


@pytest.fixture
def portrait(people, tmp_path):
    source = sorted((people / "val-portraits" / "images").iterdir())[0]
    return Path(shutil.copy(source, tmp_path / "portrait.jpg"))


@pytest.mark.parametrize("effect,suffix,channels", [("blur", ".jpg", 3), ("remove", ".png", 4),
                                                     ("replace", ".jpg", 3), ("mask", ".jpg", 1)])
def test_image_effects_write_default_output(tiny_onnx, portrait, effect, suffix, channels):
    result = segedge("run", portrait, "--engine", tiny_onnx, "--effect", effect, "--quiet")
    assert result.returncode == 0, result.stderr
    out = portrait.with_name(f"portrait_{effect}{suffix}")
    image = cv2.imread(str(out), cv2.IMREAD_UNCHANGED)
    assert image.shape[:2] == cv2.imread(str(portrait)).shape[:2]
    assert (image.shape[2] if image.ndim == 3 else 1) == channels


@pytest.mark.parametrize("kind", ["gray", "rgba", "16bit"])
def test_odd_image_formats(tiny_onnx, tmp_path, kind):
    rng = np.random.default_rng(1)
    image = {"gray": rng.integers(0, 256, (37, 53), dtype=np.uint8),
             "rgba": rng.integers(0, 256, (37, 53, 4), dtype=np.uint8),
             "16bit": rng.integers(0, 65536, (37, 53, 3), dtype=np.uint16)}[kind]
    source = tmp_path / f"{kind}.png"
    cv2.imwrite(str(source), image)
    result = segedge("run", source, "--engine", tiny_onnx, "-o", tmp_path / "out.png", "--quiet")
    assert result.returncode == 0, result.stderr
    assert cv2.imread(str(tmp_path / "out.png")).shape == (37, 53, 3)


@pytest.mark.parametrize("kind", ["gray", "rgba"])
@pytest.mark.parametrize("edges", ["--clean-edges", "--no-clean-edges"])
def test_remove_of_odd_images_with_and_without_clean_edges(tiny_onnx, tmp_path, kind, edges):
    rng = np.random.default_rng(2)
    image = rng.integers(0, 256, (37, 53) if kind == "gray" else (37, 53, 4), dtype=np.uint8)
    cv2.imwrite(str(tmp_path / "in.png"), image)
    result = segedge_in_process("run", tmp_path / "in.png", "--engine", tiny_onnx, "--effect", "remove", edges,
                                "-o", tmp_path / "out.png", "--quiet")
    assert result.returncode == 0, result.stderr
    out = cv2.imread(str(tmp_path / "out.png"), cv2.IMREAD_UNCHANGED)
    assert out.shape == (37, 53, 4)
    colours = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR) if kind == "gray" else image[..., :3]
    soft = (out[..., 3] > 0) & (out[..., 3] < 255)
    assert soft.any()  # the tiny model's matte is soft: the estimator had work to do
    assert np.array_equal(out[..., :3], colours) == (edges == "--no-clean-edges")


def test_folder_mode_keeps_names_and_reports_unreadable(tiny_onnx, people, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for source in sorted((people / "val" / "images").iterdir())[:3]:
        shutil.copy(source, folder / source.name)
    (folder / "broken.jpg").write_bytes(b"not an image")
    result = segedge("run", folder, "--engine", tiny_onnx, "--effect", "remove", "--quiet")
    assert result.returncode == 0, result.stderr
    written = sorted(p.name for p in (tmp_path / "photos_remove").iterdir())
    assert written == sorted(p.with_suffix(".png").name for p in folder.iterdir() if p.name != "broken.jpg")
    assert "broken.jpg" in result.stderr


def test_video_keeps_frames_duration_and_audio(tiny_onnx, tmp_path):
    source = make_video(tmp_path / "clip.mp4", audio=True)
    result = segedge("run", source, "--engine", tiny_onnx, "--quiet")
    assert result.returncode == 0, result.stderr
    out = tmp_path / "clip_blur.mp4"
    before = ffprobe(source, "stream=nb_read_frames,r_frame_rate,duration")["streams"][0]
    after = ffprobe(out, "stream=nb_read_frames,r_frame_rate,duration")["streams"][0]
    assert after["nb_read_frames"] == before["nb_read_frames"] == "10"
    assert after["r_frame_rate"] == before["r_frame_rate"]
    assert float(after["duration"]) == pytest.approx(float(before["duration"]), abs=0.05)
    audio_in = ffprobe(source, "stream=codec_name,duration", stream="a:0")["streams"][0]
    audio_out = ffprobe(out, "stream=codec_name,duration", stream="a:0")["streams"][0]
    assert audio_out["codec_name"] == audio_in["codec_name"]
    assert float(audio_out["duration"]) == pytest.approx(float(audio_in["duration"]), abs=0.05)


def test_video_without_audio_and_alpha_webm(tiny_onnx, tmp_path):
    source = make_video(tmp_path / "silent.mp4", audio=False)
    out = tmp_path / "cutout.webm"
    result = segedge("run", source, "--engine", tiny_onnx, "--effect", "remove", "-o", out, "--quiet")
    assert result.returncode == 0, result.stderr
    assert ffprobe(out, "stream=nb_read_frames")["streams"][0]["nb_read_frames"] == "10"
    assert ffprobe(out, "stream=codec_name", stream="a")["streams"] == []


def test_rotated_video_is_turned_upright(tiny_onnx, tmp_path):
    import av

    source = make_video(tmp_path / "phone.mp4", audio=False, size="96x64", rotate=90)
    with av.open(str(source)) as container:
        if not next(container.decode(video=0)).rotation:
            pytest.skip("this ffmpeg did not write a display matrix from the rotate tag")
    out = tmp_path / "phone_mask.mp4"
    result = segedge("run", source, "--engine", tiny_onnx, "--effect", "mask", "-o", out, "--quiet")
    assert result.returncode == 0, result.stderr
    stream = ffprobe(out, "stream=width,height")["streams"][0]
    assert (stream["width"], stream["height"]) == (64, 96)


def _bad_inputs(tmp_path, tiny_onnx):
    (tmp_path / "text.mp4").write_text("hello")
    (tmp_path / "empty.mp4").write_bytes(b"")
    (tmp_path / "corrupt.jpg").write_bytes(b"\xff\xd8 truncated")
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "model.onnx").write_text("not a model")
    good = tmp_path / "good.png"
    cv2.imwrite(str(good), np.zeros((32, 32, 3), np.uint8))
    engine = ["--engine", tiny_onnx]
    return {
        "missing file": (["run", tmp_path / "nope.jpg", *engine], "nope.jpg"),
        "text named .mp4": (["run", tmp_path / "text.mp4", *engine], "text.mp4"),
        "zero-length video": (["run", tmp_path / "empty.mp4", *engine], "empty.mp4"),
        "corrupt image": (["run", tmp_path / "corrupt.jpg", *engine], "corrupt.jpg"),
        "unsupported extension": (["run", tmp_path / "notes.txt", *engine], ".txt"),
        "model of the wrong kind": (["run", good, "--engine", tmp_path / "notes.txt"], "notes.txt"),
        "corrupt model": (["run", good, "--engine", tmp_path / "model.onnx"], "model.onnx"),
        "webcam that does not open": (["run", "9", *engine, "-o", tmp_path / "cam.mp4"], "webcam 9"),
        "unwritable output folder": (["run", good, *engine, "-o", tmp_path / "no" / "dir" / "x.png"], "no/dir"),
        "output is the input": (["run", good, *engine, "-o", good], "is the input"),
    }


def test_bad_inputs_give_one_line_errors_and_no_output(tiny_onnx, tmp_path):
    for name, (args, fragment) in _bad_inputs(tmp_path, tiny_onnx).items():
        before = sorted(p.name for p in tmp_path.iterdir())
        result = segedge(*args, "--quiet")
        assert_one_line_error(result, fragment), name
        assert sorted(p.name for p in tmp_path.iterdir()) == before, f"{name} left files behind"


def test_failed_video_leaves_no_partial_output(tiny_onnx, tmp_path):
    source = make_video(tmp_path / "clip.mp4", audio=False)
    truncated = tmp_path / "cut.mp4"
    truncated.write_bytes(source.read_bytes()[:2000])
    result = segedge("run", truncated, "--engine", tiny_onnx, "-o", tmp_path / "out.mp4", "--quiet")
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert not (tmp_path / "out.mp4").exists()
    assert not [p for p in tmp_path.iterdir() if "partial" in p.name]


def test_run_works_without_torch(tiny_onnx, portrait, tmp_path):
    blocker = tmp_path / "no_torch"
    (blocker / "torch").mkdir(parents=True)
    (blocker / "torch" / "__init__.py").write_text("raise ImportError('torch is blocked for this test')\n")
    env = {**os.environ, "PYTHONPATH": f"{blocker}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    check = subprocess.run([sys.executable, "-c", "import torch"], capture_output=True, env=env)
    assert check.returncode != 0  # the blocker really hides torch
    result = segedge("run", portrait, "--engine", tiny_onnx, "-o", tmp_path / "out.jpg", "--quiet", env=env)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out.jpg").is_file()


def test_segmenter_python_api(tiny_onnx, portrait):
    segmenter = Segmenter(tiny_onnx)
    frame = cv2.cvtColor(cv2.imread(str(portrait)), cv2.COLOR_BGR2RGB)
    matte = segmenter.mask(frame)
    assert matte.shape == frame.shape[:2] and matte.dtype == np.float32
    assert 0.0 <= matte.min() and matte.max() <= 1.0
    assert segmenter.apply(frame, effect="remove").shape == (*frame.shape[:2], 4)
    assert segmenter.spec.input_size == (64, 64)


def test_webm_output_transcodes_audio_it_cannot_copy(tiny_onnx, tmp_path):
    source = make_video(tmp_path / "talk.mp4", audio=True)  # AAC, which WebM cannot hold
    out = tmp_path / "talk.webm"
    result = segedge("run", source, "--engine", tiny_onnx, "-o", out, "--quiet")
    assert result.returncode == 0, result.stderr
    assert ffprobe(out, "stream=nb_read_frames")["streams"][0]["nb_read_frames"] == "10"
    audio = ffprobe(out, "stream=codec_name", stream="a:0")["streams"][0]
    assert audio["codec_name"] == "opus"
    packets = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "packet=stream_index", "-of", "csv=p=0",
                              str(out)], capture_output=True, text=True, check=True).stdout.split()
    assert set(packets[:len(packets) // 2]) == {"0", "1"}  # audio interleaved with video, not appended at the end


@pytest.mark.parametrize("option,value,message", [("--smooth", "1.5", "smoothing"), ("--threshold", "1", "threshold"),
                                                  ("--effect", "sepia", "unknown effect"),
                                                  ("--background", "nocolour", "nocolour"),
                                                  ("--model-every", "0", "at least 1")])
def test_bad_options_are_one_line_errors(tiny_onnx, tmp_path, option, value, message):
    source = make_video(tmp_path / "clip.mp4", audio=False)
    effect = ["--effect", "replace"] if option == "--background" else []
    result = segedge("run", source, "--engine", tiny_onnx, *effect, option, value, "-o", tmp_path / "out.mp4",
                     "--quiet")
    assert_one_line_error(result, message)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4"]


def test_webcam_loop_records_every_frame_it_shows_atomically(tiny_onnx, tmp_path):
    from segedge.stream import Camera
    from segedge.webcam import LiveOutputs, run_live

    source = make_video(tmp_path / "camera.mp4", audio=False)
    out = tmp_path / "recording.mp4"
    capture = cv2.VideoCapture(str(source))  # any OpenCV source stands in for a camera here
    stats = run_live(Segmenter(tiny_onnx), lambda: Camera(capture), LiveOutputs(out), Effect("mask"))
    # a file captures faster than the model runs: the stale frames are dropped, never queued
    assert stats.frames + stats.dropped == 10 and stats.frames >= 1
    assert ffprobe(out, "stream=nb_read_frames")["streams"][0]["nb_read_frames"] == str(stats.frames)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["camera.mp4", "recording.mp4"]


def test_model_size_for_fixed_and_dynamic_models():
    from segedge.runtime import model_size
    from segedge.spec import ModelSpec

    assert model_size((1080, 1920), ModelSpec(input_size=(256, 256))) == (256, 256)
    dynamic = ModelSpec(input_size=(256, 256), dynamic=True)
    height, width = model_size((1080, 1920), dynamic)
    assert height % 16 == 0 and width % 16 == 0 and abs(width / height - 16 / 9) < 0.1
    assert model_size((10, 4000), dynamic) == (128, 512)  # clamped to 0.5x..2x of the training size per side


@pytest.fixture(scope="module")
def dynamic_onnx(tiny_checkpoint, tmp_path_factory):
    from segedge.export.onnx import export_checkpoint

    return export_checkpoint(tiny_checkpoint, tmp_path_factory.mktemp("dynamic") / "dynamic.onnx", dynamic=True)


def test_dynamic_model_batches_video_frames_and_keeps_aspect(dynamic_onnx, tmp_path):
    segmenter = Segmenter(dynamic_onnx)
    assert segmenter.max_batch > 1
    frames = [np.zeros((90, 160, 3), np.uint8)] * 3 + [np.zeros((50, 50, 3), np.uint8)]
    probs = segmenter.probabilities(frames)  # mixed sizes are split into same-shaped batches
    assert [p.shape for p in probs] == [(48, 80)] * 3 + [(64, 64)]
    source = make_video(tmp_path / "clip.mp4", audio=True)
    stats = segmenter.process_video(source, tmp_path / "out.mp4", effect="replace", background="blue", quiet=True)
    assert stats.frames == 10
    assert ffprobe(tmp_path / "out.mp4", "stream=nb_read_frames")["streams"][0]["nb_read_frames"] == "10"


def test_python_api_background_from_colour_or_path(tiny_onnx, portrait, tmp_path):
    segmenter = Segmenter(tiny_onnx)
    frame = np.full((40, 30, 3), 90, np.uint8)
    plate = tmp_path / "plate.png"
    cv2.imwrite(str(plate), np.full((10, 10, 3), 7, np.uint8))
    for background in ("green", "#00b140", str(plate), (0, 177, 64)):
        assert segmenter.apply(frame, effect="replace", background=background).shape == (40, 30, 3)


def test_output_paths_folders_and_extensions(tiny_onnx, portrait, tmp_path):
    (tmp_path / "into").mkdir()
    assert segedge("run", portrait, "--engine", tiny_onnx, "-o", tmp_path / "into", "--quiet").returncode == 0
    assert (tmp_path / "into" / "portrait_blur.jpg").is_file()  # an existing folder takes the default name
    assert_one_line_error(segedge("run", portrait, "--engine", tiny_onnx, "-o", tmp_path / "noext", "--quiet"),
                          "image extension")
    clip = make_video(tmp_path / "clip.mp4", audio=False)
    assert_one_line_error(segedge("run", clip, "--engine", tiny_onnx, "-o", tmp_path / "x.gif", "--quiet"),
                          "video extension")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "a.jpg").write_bytes(b"nope")
    assert_one_line_error(segedge("run", broken, "--engine", tiny_onnx, "--quiet"), "could be read")
    assert not (tmp_path / "broken_blur").exists()  # no empty output folder left behind
    assert not [p for p in tmp_path.rglob("*") if "partial" in p.name or p.name in ("noext", "x.gif")]


def test_without_engine_uses_the_embedded_model_or_says_how(portrait, tmp_path):
    from segedge.backends import DEFAULT_MODEL

    result = segedge("run", portrait, "-o", tmp_path / "out.jpg", "--quiet")
    if DEFAULT_MODEL.is_file():
        assert result.returncode == 0, result.stderr
        assert (tmp_path / "out.jpg").is_file()
    else:
        assert_one_line_error(result, "--engine")
        assert not (tmp_path / "out.jpg").exists()


def test_edge_cleaning_defaults_on_for_photos_and_off_for_video_and_live():
    from segedge.runner import RunOptions, clean_edges_for

    assert clean_edges_for(RunOptions(input="a.jpg"), "image") and clean_edges_for(RunOptions(input="d"), "folder")
    assert not clean_edges_for(RunOptions(input="a.mp4"), "video")  # ~18 ms a 720p frame: over a 30 fps budget
    assert not clean_edges_for(RunOptions(input="a.mp4", live=True), "video")
    assert not clean_edges_for(RunOptions(input="0"), "webcam")
    assert clean_edges_for(RunOptions(input="a.mp4", clean_edges=True), "video")  # asked for: always honoured
    assert not clean_edges_for(RunOptions(input="a.jpg", clean_edges=False), "image")


def test_live_sources_run_the_model_on_every_second_frame_unless_told():
    from segedge.runner import RunOptions, model_every_for

    assert model_every_for(RunOptions(input="0"), live=True) == 2  # a call must keep up with the camera
    assert model_every_for(RunOptions(input="a.mp4"), live=False) == 1  # files: exactness first
    assert model_every_for(RunOptions(input="0", model_every=1), live=True) == 1
    assert model_every_for(RunOptions(input="a.mp4", model_every=3), live=False) == 3


def test_mirror_tta_answers_a_mirrored_photo_with_the_mirrored_matte(portrait, tmp_path):
    """--tta averages the model's output on a frame and on its mirror image, so the mirrored photo gets exactly the
    mirrored probabilities (the model alone does not); the CLI option reaches the model."""
    from segedge.media import read_image

    rgb = read_image(portrait)
    mirrored = np.ascontiguousarray(rgb[:, ::-1])
    plain, tta = Segmenter("fast"), Segmenter("fast", tta=True)
    assert "mirror TTA" in tta.describe() and "TTA" not in plain.describe()
    probs = tta.probabilities([rgb, mirrored])
    np.testing.assert_allclose(probs[0], probs[1][:, ::-1], atol=1e-5)
    plain_probs = plain.probabilities([rgb, mirrored])
    assert np.abs(plain_probs[0] - plain_probs[1][:, ::-1]).max() > 1e-3
    np.testing.assert_allclose(probs[0], (plain_probs[0] + plain_probs[1][:, ::-1]) / 2, atol=1e-5)
    outputs = {}
    for flag in ("--tta", "--no-tta"):
        outputs[flag] = tmp_path / f"{flag}.png"
        result = segedge_in_process("run", portrait, "--engine", "fast", "--effect", "mask", "-o", outputs[flag], flag)
        assert result.returncode == 0, result.stderr
    with_tta, without = (cv2.imread(str(outputs[f]), cv2.IMREAD_GRAYSCALE) for f in ("--tta", "--no-tta"))
    assert np.array_equal(with_tta, alpha_to_uint8(tta.mask(rgb))) and not np.array_equal(with_tta, without)
