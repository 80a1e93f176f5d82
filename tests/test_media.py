"""Media I/O: image decoding of every kind, atomic writes, folder/glob expansion, video probing and rotation."""

import shutil
import subprocess

import cv2
import numpy as np
import pytest

from segedge.errors import SegedgeError
from segedge.media import atomic_output, expand_images, probe_video, read_image, to_rgb8, upright, write_image


def test_to_rgb8_handles_gray_bgra_16bit_and_float():
    gray = np.array([[0, 255]], np.uint8)
    assert to_rgb8(gray).shape == (1, 2, 3) and to_rgb8(gray)[0, 1].tolist() == [255, 255, 255]
    bgra = np.zeros((1, 1, 4), np.uint8)
    bgra[0, 0] = (10, 20, 30, 0)
    assert to_rgb8(bgra)[0, 0].tolist() == [30, 20, 10]
    deep = np.full((1, 1, 3), 0xABCD, np.uint16)
    assert to_rgb8(deep).dtype == np.uint8 and to_rgb8(deep)[0, 0, 0] == 0xAB
    assert to_rgb8(np.full((1, 1, 3), 1.0, np.float32))[0, 0, 0] == 255


@pytest.mark.parametrize("shape,dtype", [((9, 7), np.uint8), ((9, 7, 4), np.uint8), ((9, 7, 3), np.uint16),
                                         ((9, 7), np.uint16)])
def test_read_image_of_any_kind_is_rgb8(tmp_path, shape, dtype):
    path = tmp_path / "image.png"
    cv2.imwrite(str(path), np.full(shape, 200 if dtype == np.uint8 else 51400, dtype))
    image = read_image(path)
    assert image.shape == (9, 7, 3) and image.dtype == np.uint8 and (image == 200).all()


def test_read_image_applies_exif_orientation(tmp_path):
    image_module = pytest.importorskip("PIL.Image")
    pixels = np.zeros((20, 40, 3), np.uint8)
    pixels[:, :10] = 255
    photo = image_module.fromarray(pixels)
    exif = photo.getexif()
    exif[0x0112] = 6  # "rotate 90 CW to display", as phones write it
    photo.save(tmp_path / "phone.jpg", exif=exif)
    assert read_image(tmp_path / "phone.jpg").shape == (40, 20, 3)


@pytest.mark.parametrize("content,message", [(None, "not found"), (b"", "empty"), (b"\x89PNG broken", "corrupt")])
def test_read_image_errors_name_the_file(tmp_path, content, message):
    path = tmp_path / "photo.png"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(SegedgeError, match=message) as error:
        read_image(path)
    assert "photo.png" in str(error.value)


def test_write_image_round_trip_and_alpha_needs_png(tmp_path):
    rgba = np.zeros((4, 5, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 255, 128
    written = write_image(tmp_path / "cut.png", rgba)
    back = cv2.imread(str(written), cv2.IMREAD_UNCHANGED)
    assert back[0, 0].tolist() == [0, 0, 255, 128]  # BGRA on disk
    with pytest.raises(SegedgeError, match="png"):
        write_image(tmp_path / "cut.jpg", rgba)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cut.png"]


def test_atomic_output_leaves_nothing_on_error_and_refuses_missing_folders(tmp_path):
    target = tmp_path / "out.mp4"
    with pytest.raises(RuntimeError), atomic_output(target) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []
    with atomic_output(target) as tmp:
        tmp.write_bytes(b"whole")
    assert target.read_bytes() == b"whole" and len(list(tmp_path.iterdir())) == 1
    with pytest.raises(SegedgeError, match="does not exist"), atomic_output(tmp_path / "no" / "x.png"):
        pass


def test_expand_images_from_folder_and_glob(tmp_path):
    for name in ("b.jpg", "a.PNG", "notes.txt"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "sub").mkdir()
    assert [p.name for p in expand_images(str(tmp_path))] == ["a.PNG", "b.jpg"]
    assert [p.name for p in expand_images(str(tmp_path / "*.jpg"))] == ["b.jpg"]
    with pytest.raises(SegedgeError, match="no images"):
        expand_images(str(tmp_path / "sub"))


needs_ffmpeg = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg CLI needed to make test videos")


def _video(path, *extra):
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc=size=48x32:rate=10:duration=1",
                    *extra, "-c:v", "libx264", "-pix_fmt", "yuv420p", str(path)], check=True)
    return path


@needs_ffmpeg
def test_probe_video(tmp_path):
    info = probe_video(_video(tmp_path / "clip.mp4"))
    assert (info.width, info.height, info.fps, info.frames, info.rotation, info.has_audio) == \
        (48, 32, 10.0, 10, 0, False)


@needs_ffmpeg
def test_upright_turns_rotated_frames(tmp_path):
    import av

    plain = _video(tmp_path / "plain.mp4")
    rotated = tmp_path / "rotated.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(plain), "-c", "copy", "-metadata:s:v:0", "rotate=90",
                    str(rotated)], check=True)
    with av.open(str(rotated)) as container:
        frame = next(container.decode(video=0))
        if not frame.rotation:
            pytest.skip("this ffmpeg did not write a display matrix from the rotate tag")
        assert upright(frame).shape == (48, 32, 3)
    assert probe_video(rotated).rotation in (90, 270)


@pytest.mark.parametrize("content,message", [(b"", "empty"), (b"just text", "cannot open video")])
def test_bad_videos_are_clear_errors(tmp_path, content, message):
    path = tmp_path / "clip.mp4"
    path.write_bytes(content)
    with pytest.raises(SegedgeError, match=message):
        probe_video(path)
    with pytest.raises(SegedgeError, match="not found"):
        probe_video(tmp_path / "missing.mp4")


@needs_ffmpeg
def test_reused_reformatter_gives_the_same_pixels_as_per_frame_conversion(tmp_path):
    import av
    from av.video.reformatter import VideoReformatter

    reformatter = VideoReformatter()
    with av.open(str(_video(tmp_path / "clip.mp4"))) as container:
        frames = list(container.decode(video=0))
    assert len(frames) == 10
    for frame in frames:
        expected = frame.to_ndarray(format="rgb24")
        assert np.array_equal(upright(frame, reformatter), expected)
        assert np.array_equal(upright(frame), expected)
