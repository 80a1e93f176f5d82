"""`Segmenter`: the Python API over any backend. Frames in (RGB uint8, any size), mattes and effects out.

    from segedge import Segmenter
    seg = Segmenter()                      # embedded default model on the best available backend
    alpha = seg.mask(rgb)                  # float32 HxW in [0, 1], refined at full resolution
    out = seg.apply(rgb, effect="blur")    # or "remove" (RGBA), "replace", "mask"
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from segedge.backends import load_backend
from segedge.effects import DEFAULT_BLUR, apply_effect
from segedge.preprocess import sigmoid, to_model_input
from segedge.refine import resize_mask, shift_threshold, upsample_mask


class Segmenter:
    def __init__(self, engine: str | Path | None = None, backend: str = "auto", threads: int | None = None,
                 refine: bool = True):
        self.backend = load_backend(engine, backend, threads)
        self.spec = self.backend.spec
        self.refine = refine

    def __repr__(self) -> str:
        return f"Segmenter({self.backend.describe()})"

    @property
    def max_batch(self) -> int:
        """Frames per inference call: a model exported with a dynamic batch takes several at once."""
        return 8 if self.spec.dynamic else 1

    def probabilities(self, frames: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Person probabilities at model resolution, one float32 array per frame."""
        results = []
        for start in range(0, len(frames), self.max_batch):
            chunk = frames[start:start + self.max_batch]
            batch = np.concatenate([to_model_input(frame, self.spec) for frame in chunk])
            output = self.backend.infer(batch)[:, 0]
            results.extend(output if self.spec.output == "probabilities" else sigmoid(output))
        return results

    def to_matte(self, prob: np.ndarray, frame: np.ndarray, threshold: float | None = None) -> np.ndarray:
        """Model-resolution probabilities -> full-resolution matte (guided upsampling, threshold shift)."""
        matte = upsample_mask(prob, frame) if self.refine else resize_mask(prob, frame.shape[:2])
        return shift_threshold(matte, self.spec.threshold if threshold is None else threshold)

    def masks(self, frames: Sequence[np.ndarray], threshold: float | None = None) -> list[np.ndarray]:
        return [self.to_matte(p, f, threshold) for p, f in zip(self.probabilities(frames), frames, strict=True)]

    def mask(self, frame: np.ndarray, threshold: float | None = None) -> np.ndarray:
        """float32 H x W matte in [0, 1] for one RGB uint8 frame."""
        return self.masks([frame], threshold)[0]

    def apply(self, frame: np.ndarray, effect: str = "blur", background=None, blur_strength: int = DEFAULT_BLUR,
              threshold: float | None = None) -> np.ndarray:
        """Segment one frame and apply an effect (see segedge.effects.apply_effect)."""
        return apply_effect(frame, self.mask(frame, threshold), effect, background, blur_strength)
