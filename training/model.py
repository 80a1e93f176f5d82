"""DeepLabv3+ (Chen et al., 2018): one backbone pass -> ASPP on high-level features -> decoder with low-level skip.

The head width is configurable and its 3x3 convs can be depthwise-separable (as in the paper) so an edge
model can afford it; the atrous rates and the number of decoder convs can be cut for a slim head. LR-ASPP
(Howard et al., 2019, MobileNetV3's segmentation head) is the lighter alternative head. All shape logic uses
tensor sizes, so the model traces to ONNX with dynamic H, W.
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
    def __init__(self, low_in: int, low_out: int, head: int, separable: bool = False, convs: int = 2):
        super().__init__()
        self.low_project = ConvBNReLU(low_in, low_out, kernel=1)
        self.fuse = nn.Sequential(*[ConvBNReLU(head + low_out if i == 0 else head, head, separable=separable)
                                    for i in range(convs)])

    def forward(self, high, low):
        high = F.interpolate(high, size=low.shape[-2:], mode="bilinear", align_corners=False)
        return self.fuse(torch.cat([high, self.low_project(low)], dim=1))


class DeepLabV3Plus(nn.Module):
    def __init__(self, backbone: str = "mobilenet_v2", head_channels: int = 256, low_level_channels: int = 48,
                 separable: bool = False, num_classes: int = 1, aspp_rates=ASPP_RATES, decoder_convs: int = 2,
                 depthwise_widths: tuple[int, ...] = ()):
        super().__init__()
        self.backbone = build_backbone(backbone, depthwise_widths)
        self.aspp = ASPP(self.backbone.high_level_channels, head_channels, rates=tuple(aspp_rates),
                         separable=separable)
        self.decoder = Decoder(self.backbone.low_level_channels, low_level_channels, head_channels, separable,
                               convs=decoder_convs)
        self.classifier = nn.Conv2d(head_channels, num_classes, 1)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        low, high = self.backbone(image)
        logits = self.classifier(self.decoder(self.aspp(high), low))
        return F.interpolate(logits, size=image.shape[-2:], mode="bilinear", align_corners=False)


class LRASPP(nn.Module):
    """Lite R-ASPP (Searching for MobileNetV3, Howard et al. 2019): a 1x1 conv on the high-level features gated
    by a global-pooling attention branch, upsampled to the low-level features and classified there, plus a 1x1
    classifier on the low-level features themselves. No atrous convs and no 3x3 at the skip resolution."""

    def __init__(self, backbone: str = "mobilenet_v2_s16", head_channels: int = 128, num_classes: int = 1,
                 depthwise_widths: tuple[int, ...] = ()):
        super().__init__()
        self.backbone = build_backbone(backbone, depthwise_widths)
        high = self.backbone.high_level_channels
        self.project = ConvBNReLU(high, head_channels, kernel=1)
        self.gate = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(high, head_channels, 1), nn.Sigmoid())
        self.low_classifier = nn.Conv2d(self.backbone.low_level_channels, num_classes, 1)
        self.high_classifier = nn.Conv2d(head_channels, num_classes, 1)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        low, high = self.backbone(image)
        x = self.project(high) * self.gate(high)
        x = F.interpolate(x, size=low.shape[-2:], mode="bilinear", align_corners=False)
        logits = self.low_classifier(low) + self.high_classifier(x)
        return F.interpolate(logits, size=image.shape[-2:], mode="bilinear", align_corners=False)


def build_model(spec: ModelSpec) -> DeepLabV3Plus | LRASPP:
    arch = spec.architecture()
    if arch.pop("head") == "lraspp":
        return LRASPP(backbone=arch["backbone"], head_channels=arch["head_channels"],
                      depthwise_widths=arch["depthwise_widths"])
    return DeepLabV3Plus(**arch)


def model_cost(model: nn.Module, size: tuple[int, int]) -> dict[str, float]:
    """GMAC (multiply-accumulates of every Conv2d/Linear, by forward hooks on one real pass) and millions of
    parameters for one image of `size`, as recorded in an exported model's spec."""
    macs = 0

    def hook(module, inputs, output):
        nonlocal macs
        if isinstance(module, nn.Conv2d):
            macs += output[0].numel() * (module.in_channels // module.groups) * module.kernel_size[0] * \
                module.kernel_size[1]
        else:
            macs += output[0].numel() * module.in_features

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.Conv2d | nn.Linear)]
    was_training = model.training
    with torch.no_grad():
        model.eval()(torch.zeros(1, 3, *size))
    model.train(was_training)
    for handle in handles:
        handle.remove()
    return {"gmac": round(macs / 1e9, 3), "params_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 2)}
