"""The streaming core on synthetic frames, with a stand-in model: order, batching, stage timers, how a stream ends,
and the one output policy."""

import numpy as np
import pytest

from segedge.effects import NAMED_COLORS, Effect
from segedge.errors import SegedgeError
from segedge.stream import EXACT, STAGES, VIDEO, EndOfStream, Frame, Sink, Source, Speed, stream


class HalfModel:
    """A segmenter whose matte is 0.5 everywhere; it records the batch sizes it was given."""

    def __init__(self, max_batch=1):
        self.max_batch, self.batches = max_batch, []

    def model_inputs(self, frames):
        return [frame[None].astype(np.float32) for frame in frames]

    def infer(self, tensors):
        self.batches.append(len(tensors))
        return [np.full(t.shape[1:3], 0.5, np.float32) for t in tensors]

    def to_matte(self, prob, frame, threshold=None):
        return prob


class Numbered(Source):
    """Frames whose pixels are their number; `interrupt_at` raises Ctrl-C there, as a user would."""

    def __init__(self, count, live=False, interrupt_at=None):
        self.total, self.live, self.interrupt_at = count, live, interrupt_at

    def __iter__(self):
        for number in range(self.total):
            if number == self.interrupt_at:
                raise KeyboardInterrupt
            yield Frame(np.full((4, 6, 3), number, np.uint8), pts=number)


class Frames(Source):
    def __init__(self, frames):
        self.frames, self.total = frames, len(frames)

    def __iter__(self):
        yield from self.frames


class Collect(Sink):
    def __init__(self, alpha=False, stop_after=None, fail_at=None):
        self.alpha, self.stop_after, self.fail_at, self.images = alpha, stop_after, fail_at, []

    def write(self, image, frame):
        if frame.pts == self.fail_at:
            raise OSError("disk on fire")
        self.images.append((frame.pts, image))
        if len(self.images) == self.stop_after:
            raise EndOfStream


@pytest.mark.parametrize("threaded", [True, False])
def test_every_frame_arrives_in_order_and_every_stage_is_timed(threaded):
    sink = Collect()
    stats = stream(Numbered(20), HalfModel(max_batch=4), sink, Effect("mask"), threaded=threaded)
    assert [pts for pts, _ in sink.images] == list(range(20)) and stats.frames == 20
    assert all(np.array_equal(image, np.full((4, 6), 128, np.uint8)) for _, image in sink.images)
    assert set(stats.stage_seconds) == set(STAGES) and all(v > 0 for v in stats.stage_seconds.values())


def test_batches_never_exceed_what_the_model_takes():
    model = HalfModel(max_batch=3)
    stream(Numbered(10), model, Collect(), threaded=True)
    assert sum(model.batches) == 10 and max(model.batches) <= 3
    sequential = HalfModel(max_batch=3)
    stream(Numbered(10), sequential, Collect(), threaded=False)
    assert sequential.batches == [1] * 10


@pytest.mark.parametrize("threaded", [True, False])
def test_a_viewer_ends_the_stream_cleanly_and_a_sink_error_stops_it(threaded):
    sink = Collect(stop_after=3)
    stream(Numbered(50), HalfModel(), sink, threaded=threaded)
    assert len(sink.images) == 3
    with pytest.raises(OSError, match="disk on fire"):
        stream(Numbered(50), HalfModel(), Collect(fail_at=5), threaded=threaded)


def test_ctrl_c_ends_a_live_source_but_not_a_file():
    sink = Collect()
    assert stream(Numbered(10, live=True, interrupt_at=4), HalfModel(), sink).frames == 4
    with pytest.raises(KeyboardInterrupt):
        stream(Numbered(10, interrupt_at=4), HalfModel(), Collect(), threaded=False)


def test_remove_becomes_a_green_or_chosen_screen_where_the_sink_has_no_alpha():
    frame, matte = np.full((2, 2, 3), 9, np.uint8), np.zeros((2, 2), np.float32)
    assert Effect("remove").for_sink(Collect(alpha=True))(frame, matte).shape == (2, 2, 4)
    green = Effect("remove").for_sink(Collect(alpha=False))
    assert green.name == "replace" and tuple(green(frame, matte)[0, 0]) == NAMED_COLORS["green"]
    assert tuple(Effect("remove", "blue").for_sink(Collect())(frame, matte)[0, 0]) == NAMED_COLORS["blue"]
    with pytest.raises(SegedgeError, match="unknown effect"):
        Effect("sepia")


@pytest.mark.parametrize("backend,threads,message", [("cpu", None, "NVIDIA GPU only"), ("auto", 2, "--threads")])
def test_a_tensorrt_engine_refuses_options_it_cannot_honour(tmp_path, backend, threads, message):
    from segedge.backends import load_backend

    engine = tmp_path / "model.trt"
    engine.write_bytes(b"not loaded: refused before")
    with pytest.raises(SegedgeError, match=message):
        load_backend(engine, backend, threads)


@pytest.mark.parametrize("threaded", [True, False])
def test_the_model_sees_every_nth_frame_and_the_others_reuse_its_matte(threaded):
    model, sink = HalfModel(max_batch=4), Collect()
    stats = stream(Numbered(10), model, sink, Effect("mask"), threaded=threaded, speed=Speed(model_every=3))
    assert sum(model.batches) == 4  # frames 0, 3, 6, 9
    assert stats.frames == 10 and [pts for pts, _ in sink.images] == list(range(10))
    assert all(np.array_equal(image, np.full((4, 6), 128, np.uint8)) for _, image in sink.images)
    with pytest.raises(SegedgeError, match="at least 1"):
        Speed(model_every=0)


def test_reduced_resolution_refinement_stays_close_to_full_resolution_on_a_real_frame(people):
    """The video default (VIDEO: guided upsampling at 640x360's pixel count, then the 8-bit matte scaled up) on a
    real photo at 720p, against refining at full resolution."""
    from segedge.effects import cover
    from segedge.media import read_image
    from segedge.runtime import Segmenter

    photo = sorted((people / "val" / "images").iterdir())[0]
    frame = Frame(cover(read_image(photo), (720, 1280)), pts=0)

    def matte(speed):
        sink = Collect()
        stream(Frames([frame]), segmenter, sink, Effect("mask"), threaded=False, speed=speed)
        return sink.images[0][1] >= 128

    segmenter = Segmenter("fast")
    full, reduced = matte(EXACT), matte(VIDEO)
    assert VIDEO.refine_pixels < 1280 * 720 and full.mean() > 0.05  # really reduced, and a person is there
    assert (full & reduced).sum() / (full | reduced).sum() > 0.98


def test_skipped_frames_follow_a_moving_person_along_the_optical_flow(people):
    """--model-every 2 on a real portrait at 720p that moves 48 px: the skipped frame's matte, moved along the flow,
    is closer to the model's own answer on that frame than the reused matte is."""
    from segedge.effects import cover
    from segedge.media import read_image
    from segedge.runtime import Segmenter

    photo = sorted((people / "val-portraits" / "images").iterdir())[3]
    still = cover(read_image(photo), (720, 1280))
    frames = [Frame(still, pts=0), Frame(np.roll(still, 48, axis=1), pts=1)]
    segmenter = Segmenter("fast")

    def second_matte(speed):
        sink = Collect()
        stream(Frames(frames), segmenter, sink, Effect("mask"), threaded=False, speed=speed)
        return sink.images[1][1] >= 128

    iou = lambda a, b: (a & b).sum() / (a | b).sum()  # noqa: E731
    truth = second_matte(VIDEO)
    reused = second_matte(Speed(2, VIDEO.refine_pixels, warp=False))
    warped = second_matte(Speed(2, VIDEO.refine_pixels))
    print(f"IoU with the model's own matte: reused {iou(reused, truth):.3f}, warped {iou(warped, truth):.3f}")
    assert truth.mean() > 0.05 and iou(warped, truth) > iou(reused, truth) + 0.01
