"""DeepLabv3+ (Chen et al., 2018): one backbone pass -> ASPP on high-level features -> decoder with low-level skip.

The head width is configurable and its 3x3 convs can be depthwise-separable (as in the paper) so an edge
model can afford it. All shape logic uses tensor sizes, so the model traces to ONNX with dynamic H, W.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from segedge.training.backbones import build_backbone
from torch import nn

from segedge.spec import ModelSpec

ASPP_RATES = (6, 12, 18)  # for output stride 16


class ConvBNReLU(nn.Sequential):
    """3x3 (optionally atrous) conv + BN + ReLU; separable = depthwise 3x3 then pointwise 1x1, as in the paper."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int = 3, dilation: int = 1, separable: bool = False):
        padding = dilation * (kernel - 1) // 2
        if separable and kernel > 1:
            layers = [
                nn.Conv2d(in_ch, in_ch, kernel, padding=padding, dilation=dilation, groups=in_ch, bias=False),
                nn.BatchNorm2d(in_ch),
                nn.ReLU(inplace=True),
                nn.Conv2d(in_ch, out_ch, 1, bias=False),
            ]
        else:
            layers = [nn.Conv2d(in_ch, out_ch, kernel, padding=padding, dilation=dilation, bias=False)]
        super().__init__(*layers, nn.BatchNorm2d(out_ch), nn.ReLU(inplace=True))


class ImagePooling(nn.Module):
    """Global average pooling branch of ASPP, broadcast back to the feature map size."""

    def __init__(self, in_ch: int, out_ch: int):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.project = ConvBNReLU(in_ch, out_ch, kernel=1)

    def forward(self, x):
        return self.project(self.pool(x)).expand(-1, -1, x.shape[2], x.shape[3])


class ASPP(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, rates=ASPP_RATES, separable: bool = False):
        super().__init__()
        branches = [ConvBNReLU(in_ch, out_ch, kernel=1)]
        branches += [ConvBNReLU(in_ch, out_ch, dilation=rate, separable=separable) for rate in rates]
        branches.append(ImagePooling(in_ch, out_ch))
        self.branches = nn.ModuleList(branches)
        self.project = nn.Sequential(ConvBNReLU(out_ch * len(branches), out_ch, kernel=1), nn.Dropout(0.1))

    def forward(self, x):
        return self.project(torch.cat([branch(x) for branch in self.branches], dim=1))


class Decoder(nn.Module):
    def __init__(self, low_in: int, low_out: int, head: int, separable: bool = False):
        super().__init__()
        self.low_project = ConvBNReLU(low_in, low_out, kernel=1)
        self.fuse = nn.Sequential(
            ConvBNReLU(head + low_out, head, separable=separable),
            ConvBNReLU(head, head, separable=separable),
        )

    def forward(self, high, low):
        high = F.interpolate(high, size=low.shape[-2:], mode="bilinear", align_corners=False)
        return self.fuse(torch.cat([high, self.low_project(low)], dim=1))


class DeepLabV3Plus(nn.Module):
    def __init__(self, backbone: str = "mobilenet_v2", head_channels: int = 256, low_level_channels: int = 48,
                 separable: bool = False, num_classes: int = 1):
        super().__init__()
        self.backbone = build_backbone(backbone)
        self.aspp = ASPP(self.backbone.high_level_channels, head_channels, separable=separable)
        self.decoder = Decoder(self.backbone.low_level_channels, low_level_channels, head_channels, separable)
        self.classifier = nn.Conv2d(head_channels, num_classes, 1)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        low, high = self.backbone(image)
        logits = self.classifier(self.decoder(self.aspp(high), low))
        return F.interpolate(logits, size=image.shape[-2:], mode="bilinear", align_corners=False)


def build_model(spec: ModelSpec) -> DeepLabV3Plus:
    return DeepLabV3Plus(**spec.architecture())
