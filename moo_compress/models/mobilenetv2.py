"""MobileNetV2 (width 1.0) for 32x32 inputs.

CIFAR strides: the stem and the second stage use stride 1. State-dict keys match chenyaofo
``cifar10_mobilenetv2_x1_0``: ``features.N`` (``features.0`` the stem, ``features.1-17`` inverted
residual blocks with a ``conv`` Sequential, ``features.18`` the last 1x1 conv) and ``classifier.1``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from moo_compress.models.registry import (
    CIFAR_MEAN,
    CIFAR_STD,
    ModelDefaults,
    PretrainedSource,
    register_model,
)

__all__ = ["MobileNetV2"]

# expansion t, output channels c, repeats n, first stride s (stage 2 stride 2 -> 1 for CIFAR)
_SETTING = [(1, 16, 1, 1), (6, 24, 2, 1), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]


def _conv_bn_relu(inp: int, out: int, kernel: int = 3, stride: int = 1, groups: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(inp, out, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
        nn.BatchNorm2d(out),
        nn.ReLU6(inplace=True),
    )


class InvertedResidual(nn.Module):
    """Expand (1x1), depthwise (3x3), project (1x1); residual when shapes allow."""

    def __init__(self, inp: int, out: int, stride: int, expand_ratio: int) -> None:
        super().__init__()
        hidden = inp * expand_ratio
        self.use_res_connect = stride == 1 and inp == out
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers.append(_conv_bn_relu(inp, hidden, kernel=1))
        layers += [
            _conv_bn_relu(hidden, hidden, stride=stride, groups=hidden),
            nn.Conv2d(hidden, out, 1, 1, 0, bias=False),
            nn.BatchNorm2d(out),
        ]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


class MobileNetV2(nn.Module):
    """MobileNetV2 x1.0 with CIFAR strides and a dropout-linear classifier."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        features: list[nn.Module] = [_conv_bn_relu(3, 32, stride=1)]
        inp = 32
        for t, c, n, s in _SETTING:
            for i in range(n):
                features.append(InvertedResidual(inp, c, s if i == 0 else 1, t))
                inp = c
        features.append(_conv_bn_relu(inp, 1280, kernel=1))
        self.features = nn.Sequential(*features)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(1280, num_classes))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.adaptive_avg_pool2d(self.features(x), 1).flatten(1)
        return self.classifier(x)


_RELEASE = "https://github.com/chenyaofo/pytorch-cifar-models/releases/download/mobilenetv2"
_DEFAULTS = ModelDefaults(
    family="mobilenetv2",
    mean=CIFAR_MEAN,
    std=CIFAR_STD,
    layer_groups={
        "stem": ("features.0.*",),
        "stage1": ("features.1.*", "features.2.*", "features.3.*"),  # 32x32: 16, 24 channels
        "stage2": ("features.4.*", "features.5.*", "features.6.*"),  # 16x16: 32 channels
        "stage3": tuple(f"features.{i}.*" for i in range(7, 14)),  # 8x8: 64, 96 channels
        "stage4": tuple(f"features.{i}.*" for i in range(14, 18)),  # 4x4: 160, 320 channels
        "head": ("features.18.*", "classifier.*"),
    },
    pretrained={
        "cifar10": PretrainedSource(f"{_RELEASE}/cifar10_mobilenetv2_x1_0-fe6a5b48.pt", 93.79),
        "cifar100": PretrainedSource(f"{_RELEASE}/cifar100_mobilenetv2_x1_0-1311f9ff.pt", 74.20),
    },
)


@register_model("mobilenetv2", _DEFAULTS)
def mobilenetv2(num_classes: int = 10) -> MobileNetV2:
    """MobileNetV2 x1.0 with CIFAR strides (stem and second stage stride 1)."""
    return MobileNetV2(num_classes=num_classes)
