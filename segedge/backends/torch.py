"""Eager PyTorch backend for .pth/.pt checkpoints: the reference every exported model is compared with."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from segedge.backends.base import Backend
from segedge.errors import SegedgeError, missing_extra

log = logging.getLogger("segedge")


class TorchBackend(Backend):
    name = "torch"

    def __init__(self, path: Path, device: str = "auto", threads: int | None = None):
        try:
            import torch

            from segedge.training.checkpoint import load_model
        except ImportError as exc:
            raise missing_extra(exc.name or "torch", "train") from None
        if threads:
            torch.set_num_threads(threads)
        model, spec, _ = load_model(path)
        super().__init__(Path(path), spec)
        self.torch = torch
        self._device = self._pick_device(device)
        self.model = model.to(self._device).eval()

    def _pick_device(self, requested: str) -> str:
        available = self.torch.cuda.is_available()
        if requested in ("auto", "cuda", "tensorrt"):
            if available:
                return "cuda"
            if requested != "auto":
                log.warning("WARNING: %s was requested but torch sees no CUDA GPU; running eager torch on CPU",
                            requested)
            return "cpu"
        if requested != "cpu":
            raise SegedgeError(f"unknown backend {requested!r} for a torch checkpoint; choose auto, cpu or cuda")
        return "cpu"

    @property
    def device(self) -> str:
        return self._device

    def infer(self, batch: np.ndarray) -> np.ndarray:
        with self.torch.inference_mode():
            output = self.model(self.torch.from_numpy(np.ascontiguousarray(batch, np.float32)).to(self._device))
            if self._device == "cuda":
                self.torch.cuda.synchronize()
            return output.float().cpu().numpy()
