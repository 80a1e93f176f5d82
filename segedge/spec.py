"""The model contract that travels with every artefact (checkpoint, ONNX metadata, TensorRT sidecar).

The runtime reads it from the artefact, so a user never repeats how a model was trained.
Torch-free on purpose: the runtime imports it.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

from segedge.errors import SegedgeError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
SPEC_METADATA_KEY = "segedge.spec"
SPEC_VERSION = 1
HEADS = ("deeplabv3plus", "lraspp")


@dataclass
class ModelSpec:
    """Architecture and I/O contract of one person-segmentation model.

    Input: float32, NCHW, RGB, pixels scaled to [0, 1] then ``(x - mean) / std``.
    Output: one channel of person logits at input resolution (the runtime applies sigmoid).
    """

    SIZE_MULTIPLE: ClassVar[int] = 16  # the network downsamples by 16: every input side is a multiple of it
    # A dynamic artefact serves sides from half to twice the trained ones: wide enough for portrait and landscape
    # frames, narrow enough that TensorRT still picks fast kernels for the trained shape.
    DYNAMIC_RANGE: ClassVar[tuple[float, float]] = (0.5, 2.0)

    backbone: str = "mobilenet_v2"
    head_channels: int = 256
    low_level_channels: int = 48
    separable: bool = False
    head: str = "deeplabv3plus"  # or "lraspp" (Lite R-ASPP, MobileNetV3's head)
    aspp_rates: tuple[int, ...] = (6, 12, 18)  # DeepLabv3+ only; () keeps just the 1x1 and image-pooling branches
    decoder_convs: int = 2  # DeepLabv3+ only: 3x3 convs after the low-level skip
    # MobileNetV2 backbones only: width of the depthwise conv of inverted-residual blocks 1, 2, ... (block 1's is
    # also the stem's output); blocks past the tuple's end keep the paper's widths. Set by `train --thin`.
    depthwise_widths: tuple[int, ...] = ()
    input_size: tuple[int, int] = (256, 256)  # (height, width) the model was trained/exported at
    dynamic: bool = False  # True when the artefact accepts any H, W that are multiples of SIZE_MULTIPLE
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    channel_order: str = "RGB"
    layout: str = "NCHW"
    output: str = "logits"
    threshold: float = 0.5
    input_name: str = "image"
    output_name: str = "logits"
    precision: str = "fp32"
    name: str = "segedge-deeplabv3plus"
    metrics: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    quantization: dict[str, Any] = field(default_factory=dict)  # INT8 only: how weights/activations were quantised
    cost: dict[str, float] = field(default_factory=dict)  # {"gmac", "params_m"} at input_size, counted at export
    versions: dict[str, str] = field(default_factory=dict)
    spec_version: int = SPEC_VERSION

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelSpec:
        if not isinstance(data, dict):
            raise SegedgeError(f"model spec is a JSON {type(data).__name__}, not an object")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise SegedgeError(f"model spec has unknown fields {unknown}; was it written by a newer segedge?")
        try:
            spec = cls(**data)
            spec.input_size = tuple(int(v) for v in spec.input_size)  # JSON turns tuples into lists
            spec.aspp_rates = tuple(int(v) for v in spec.aspp_rates)
            spec.depthwise_widths = tuple(int(v) for v in spec.depthwise_widths)
            spec.mean = tuple(float(v) for v in spec.mean)
            spec.std = tuple(float(v) for v in spec.std)
            spec.validate()
        except (TypeError, ValueError) as exc:  # "input_size": "abc", a threshold that is no number, ...
            raise SegedgeError(f"model spec is malformed ({exc})") from None
        return spec

    @classmethod
    def from_json(cls, text: str) -> ModelSpec:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SegedgeError(f"model spec is not valid JSON: {exc}") from None
        return cls.from_dict(data)

    @classmethod
    def from_artefact(cls, data: dict[str, Any] | str, source) -> ModelSpec:
        """from_json (text) or from_dict, with the artefact's name in every error."""
        try:
            return cls.from_json(data) if isinstance(data, str) else cls.from_dict(data)
        except SegedgeError as exc:
            raise SegedgeError(f"{source}: {exc}") from None

    def validate(self) -> None:
        height, width = self.input_size
        if not (self.fits_size(height) and self.fits_size(width)):
            raise SegedgeError(f"model input size {height}x{width} must be positive multiples of {self.SIZE_MULTIPLE}")
        if self.channel_order != "RGB" or self.layout != "NCHW":
            raise SegedgeError(f"unsupported input convention {self.channel_order}/{self.layout}; expected RGB/NCHW")
        if self.output not in ("logits", "probabilities"):
            raise SegedgeError(f"unsupported model output kind {self.output!r}")
        if self.head not in HEADS:
            raise SegedgeError(f"unknown model head {self.head!r}; expected one of {', '.join(HEADS)}")
        if not 0.0 < self.threshold < 1.0:
            raise SegedgeError(f"threshold {self.threshold} must be between 0 and 1")

    @classmethod
    def fits_size(cls, side: int) -> bool:
        """Whether a model can take an input side of this many pixels."""
        return side > 0 and side % cls.SIZE_MULTIPLE == 0

    def dynamic_sides(self, trained: int, outward: bool = False) -> tuple[int, int]:
        """Smallest and largest side a dynamic artefact serves for a trained side of `trained` pixels: multiples of
        SIZE_MULTIPLE within DYNAMIC_RANGE (what the runtime picks), or with `outward` just covering it (the
        TensorRT profile, so every size the runtime picks lies inside it)."""
        low, high = (trained * scale / self.SIZE_MULTIPLE for scale in self.DYNAMIC_RANGE)
        low, high = (math.floor(low), math.ceil(high)) if outward else (math.ceil(low), math.floor(high))
        return self.SIZE_MULTIPLE * max(1, low), self.SIZE_MULTIPLE * max(1, high)

    def architecture(self) -> dict[str, Any]:
        """Keyword arguments that rebuild the torch model."""
        return {
            "backbone": self.backbone,
            "head_channels": self.head_channels,
            "low_level_channels": self.low_level_channels,
            "separable": self.separable,
            "head": self.head,
            "aspp_rates": tuple(self.aspp_rates),
            "decoder_convs": self.decoder_convs,
            "depthwise_widths": tuple(self.depthwise_widths),
        }
