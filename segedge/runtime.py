"""`Segmenter`: the Python API over any backend. Frames in (RGB uint8, any size), mattes and effects out.

    from segedge import Segmenter
    seg = Segmenter()                      # embedded default model on the best available backend
    alpha = seg.mask(rgb)                  # float32 HxW in [0, 1], refined at full resolution
    out = seg.apply(rgb, effect="blur")    # or "remove" (RGBA), "replace", "mask"
    seg.process_video("clip.mp4", "clip_blur.mp4")
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from segedge.backends import load_backend
from segedge.cpu import bounded_threads
from segedge.effects import DEFAULT_BLUR, Effect
from segedge.errors import SegedgeError
from segedge.preprocess import to_model_input, to_probabilities
from segedge.refine import shift_threshold, upsample
from segedge.spec import ModelSpec


def model_size(frame_size: tuple[int, int], spec: ModelSpec) -> tuple[int, int]:
    """(height, width) to run a frame at: the model's fixed size, or for a dynamic model the frame's aspect ratio
    at the training pixel count, each side a multiple of the spec's SIZE_MULTIPLE within the sides dynamic
    artefacts serve (ModelSpec.dynamic_sides)."""
    if not spec.dynamic:
        return spec.input_size
    height, width = frame_size
    train_h, train_w = spec.input_size
    scale = math.sqrt(train_h * train_w / (height * width))

    def side(value: float, trained: int) -> int:
        low, high = spec.dynamic_sides(trained)
        return min(max(spec.SIZE_MULTIPLE * round(value / spec.SIZE_MULTIPLE), low), high)

    return side(height * scale, train_h), side(width * scale, train_w)


def check_threshold(threshold: float | None) -> None:
    if threshold is not None and not 0.0 < threshold < 1.0:
        raise SegedgeError(f"threshold {threshold} must be between 0 and 1 (exclusive)")


class Segmenter:
    def __init__(self, engine: str | Path | None = None, backend: str = "auto", threads: int | None = None,
                 refine: bool = True, spinning: bool = False, tta: bool = False):
        """`spinning=True` lets idle onnxruntime CPU threads spin-wait for work: 3-9% faster on an idle CPU, up to
        2.4x slower beside another busy process, so segedge leaves it off for every use (see open_session).
        `tta=True` (test-time augmentation) averages the model's output on each frame and on its mirror image: twice
        the model time, for photos where accuracy matters more (default model, guided IoU val / portraits / scenes
        0.9358 / 0.9665 / 0.7460 -> 0.9387 / 0.9668 / 0.7612, benchmarks/results/tta.md)."""
        self.backend = load_backend(engine, backend, bounded_threads(threads), spinning=spinning)
        self.spec = self.backend.spec
        self.refine, self.tta = refine, tta

    def __repr__(self) -> str:
        return f"Segmenter({self.describe()})"

    def describe(self) -> str:
        return self.backend.describe() + (", mirror TTA" if self.tta else "")

    @property
    def max_batch(self) -> int:
        """Frames per inference call: more than one only when the model file accepts a batch."""
        return max(1, self.backend.max_batch)

    def _batches(self, tensors: list[np.ndarray]) -> Iterator[np.ndarray]:
        """Runs of same-shaped inputs, at most max_batch each (dynamic models may see mixed frame sizes)."""
        start = 0
        while start < len(tensors):
            end = start + 1
            while end < len(tensors) and end - start < self.max_batch and tensors[end].shape == tensors[start].shape:
                end += 1
            yield np.concatenate(tensors[start:end])
            start = end

    def probabilities(self, frames: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Person probabilities at model resolution, one float32 array per frame."""
        return self.infer(self.model_inputs(frames))

    def model_inputs(self, frames: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Each frame as the model's 1 x 3 x H x W input, at the size model_size picks for it."""
        return [to_model_input(frame, self.spec, model_size(frame.shape[:2], self.spec)) for frame in frames]

    def infer(self, tensors: list[np.ndarray]) -> list[np.ndarray]:
        """Model inputs -> probabilities at model resolution, batched as the backend allows; with `tta`, the mean of
        each input's and its mirror image's (mirrored back)."""
        if not self.tta:
            return self._infer(tensors)
        mirrored = self._infer([np.ascontiguousarray(tensor[..., ::-1]) for tensor in tensors])
        return [(prob + flipped[..., ::-1]) / 2 for prob, flipped in zip(self._infer(tensors), mirrored, strict=True)]

    def _infer(self, tensors: list[np.ndarray]) -> list[np.ndarray]:
        results = []
        for batch in self._batches(tensors):
            output = self.backend.infer(batch)[:, 0]
            results.extend(to_probabilities(output, self.spec))
        return results

    def upsample(self, prob: np.ndarray, frame: np.ndarray) -> np.ndarray:
        """Model-resolution probabilities -> the frame's size: guided by the frame when refining, else bilinear."""
        return upsample(prob, frame, self.refine)

    def to_matte(self, prob: np.ndarray, frame: np.ndarray, threshold: float | None = None) -> np.ndarray:
        """Model-resolution probabilities -> full-resolution matte (guided upsampling, threshold shift)."""
        check_threshold(threshold)
        return shift_threshold(self.upsample(prob, frame), self.spec.threshold if threshold is None else threshold)

    def masks(self, frames: Sequence[np.ndarray], threshold: float | None = None) -> list[np.ndarray]:
        return [self.to_matte(p, f, threshold) for p, f in zip(self.probabilities(frames), frames, strict=True)]

    def mask(self, frame: np.ndarray, threshold: float | None = None) -> np.ndarray:
        """float32 H x W matte in [0, 1] for one RGB uint8 frame."""
        return self.masks([frame], threshold)[0]

    def apply(self, frame: np.ndarray, effect: str = "blur", background=None, blur_strength: int = DEFAULT_BLUR,
              threshold: float | None = None, clean_edges: bool = True) -> np.ndarray:
        """Segment one frame and apply an effect (see segedge.effects.apply_effect); `background` may also be an
        image path or a colour name; `clean_edges=False` blends the frame's own edge colours in remove/replace."""
        return Effect(effect, background, blur_strength, clean_edges)(frame, self.mask(frame, threshold))

    def process_video(self, source: str | Path, target: str | Path, effect: str = "blur", background=None,
                      blur_strength: int = DEFAULT_BLUR, threshold: float | None = None, smooth: float = 0.5,
                      quiet: bool = False, clean_edges: bool = True):
        """A video file through the threaded pipeline, audio kept (see segedge.video.process_video)."""
        from segedge.video import process_video

        return process_video(self, source, target, Effect(effect, background, blur_strength, clean_edges),
                             threshold, smooth, quiet)
