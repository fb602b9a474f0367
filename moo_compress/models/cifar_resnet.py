"""The CIFAR ResNets of He et al. (2016): ResNet-20/32/44/56/110, 16-32-64 channels.

Option-A shortcuts (identity; stride-2 subsampling and zero-padded channels where shapes change),
head named ``linear``: state-dict keys match akamaster/pytorch_resnet_cifar10 checkpoints once their
``module.`` prefix is stripped.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from moo_compress.models.registry import IMAGENET_MEAN, IMAGENET_STD, ModelDefaults, register_model

__all__ = ["CifarResNet", "BasicBlock"]


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers with an option-A identity shortcut."""

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = stride != 1 or in_planes != planes
        self.pad = (planes - in_planes) // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        shortcut = x
        if self.downsample:
            shortcut = F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.pad, self.pad))
        return F.relu(out + shortcut)


class CifarResNet(nn.Module):
    """conv1-bn1, three stages of ``n`` basic blocks (16, 32, 64 channels), global pool, ``linear``."""

    def __init__(self, blocks_per_stage: int, num_classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        in_planes = 16
        stages = []
        for planes, stride in ((16, 1), (32, 2), (64, 2)):
            blocks = []
            for i in range(blocks_per_stage):
                blocks.append(BasicBlock(in_planes, planes, stride if i == 0 else 1))
                in_planes = planes
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = stages
        self.linear = nn.Linear(64, num_classes)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer3(self.layer2(self.layer1(out)))
        out = F.adaptive_avg_pool2d(out, 1).flatten(1)
        return self.linear(out)


_GROUPS = {
    "stem": ("conv1",),
    "layer1": ("layer1.*",),
    "layer2": ("layer2.*",),
    "layer3": ("layer3.*",),
    "head": ("linear",),
}


def _register(depth: int) -> None:
    n = (depth - 2) // 6
    defaults = ModelDefaults(family="cifar_resnet", mean=IMAGENET_MEAN, std=IMAGENET_STD, layer_groups=_GROUPS)

    @register_model(f"resnet{depth}", defaults)
    def build(num_classes: int = 10) -> CifarResNet:
        return CifarResNet(n, num_classes=num_classes)

    build.__doc__ = f"CIFAR ResNet-{depth} ({n} blocks per stage, option-A shortcuts)."


for _depth in (20, 32, 44, 56, 110):
    _register(_depth)
