"""The backend protocol: load a model artefact with its spec, run a float32 NCHW batch (at most max_batch frames),
return logits."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path

import numpy as np

from segedge.spec import ModelSpec


class Backend(ABC):
    """One way of running a model (eager torch, onnxruntime, native TensorRT)."""

    name: str = "backend"

    def __init__(self, path: Path, spec: ModelSpec):
        self.path = Path(path)
        self.spec = spec

    @property
    def device(self) -> str:
        return "cpu"

    @property
    def precision(self) -> str:
        return self.spec.precision

    @property
    def max_batch(self) -> int:
        """The most frames one infer() call takes; backends whose model accepts a batch say more."""
        return 1

    @abstractmethod
    def infer(self, batch: np.ndarray) -> np.ndarray:
        """float32 N x 3 x H x W (normalised) -> float32 N x 1 x H x W logits."""

    def describe(self) -> str:
        return f"{self.name} ({self.device}, {self.precision}) {self.path.name}"
