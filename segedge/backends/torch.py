"""Eager PyTorch backend for .pth/.pt checkpoints: the reference every exported model is compared with.

The options are the usual ways to speed eager PyTorch up before exporting (FP16 weights and activations on a GPU,
channels-last memory format, torch.compile), so `segedge bench` can show what export buys over each of them."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from segedge.backends.base import Backend
from segedge.errors import SegedgeError, missing_extra

log = logging.getLogger("segedge")


class TorchBackend(Backend):
    name = "torch"

    def __init__(self, path: Path, device: str = "auto", threads: int | None = None, half: bool = False,
                 channels_last: bool = False, compile: bool = False):
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
        if half and self._device != "cuda":
            raise SegedgeError("fp16 eager torch needs a CUDA GPU (CPU half-precision convolutions are no "
                               "deployment target)")
        self.dtype = torch.float16 if half else torch.float32
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        model = model.to(self._device, dtype=self.dtype, memory_format=self.memory_format).eval()
        self.model = torch.compile(model) if compile else model

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

    @property
    def precision(self) -> str:
        return "fp16" if self.dtype == self.torch.float16 else self.spec.precision

    def infer(self, batch: np.ndarray) -> np.ndarray:
        tensor = self.torch.from_numpy(np.ascontiguousarray(batch, np.float32))
        with self.torch.inference_mode():
            tensor = tensor.to(self._device, dtype=self.dtype).contiguous(memory_format=self.memory_format)
            output = self.model(tensor)
            if self._device == "cuda":
                self.torch.cuda.synchronize()
            return output.float().cpu().numpy()
