"""VGG-11/13/16/19 with batch norm for 32x32 inputs.

State-dict keys match chenyaofo/pytorch-cifar-models ``cifar10_vgg*_bn``: ``features.N.*`` (3x3 conv
with bias, BatchNorm2d, ReLU; max-pool after each block) and ``classifier.{0,3,6}.*``.
"""

from __future__ import annotations

import torch
from torch import nn

from moo_compress.models.registry import (
    CIFAR_MEAN,
    CIFAR_STD,
    ModelDefaults,
    PretrainedSource,
    register_model,
)

__all__ = ["VGG"]

_CFGS: dict[str, list[int | str]] = {
    "vgg11": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg13": [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    "vgg19": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M",
              512, 512, 512, 512, "M", 512, 512, 512, 512, "M"],
}  # fmt: skip

_RELEASE = "https://github.com/chenyaofo/pytorch-cifar-models/releases/download/vgg"
_PRETRAINED = {
    "vgg11": {"cifar10": ("cifar10_vgg11_bn-eaeebf42.pt", 92.79), "cifar100": ("cifar100_vgg11_bn-57d0759e.pt", 70.78)},
    "vgg13": {"cifar10": ("cifar10_vgg13_bn-c01e4a43.pt", 94.00), "cifar100": ("cifar100_vgg13_bn-5ebe5778.pt", 74.63)},
    "vgg16": {"cifar10": ("cifar10_vgg16_bn-6ee7ea24.pt", 94.16), "cifar100": ("cifar100_vgg16_bn-7d8c4031.pt", 74.00)},
    "vgg19": {"cifar10": ("cifar10_vgg19_bn-57191229.pt", 93.91), "cifar100": ("cifar100_vgg19_bn-b98f7bd7.pt", 73.87)},
}  # fmt: skip


class VGG(nn.Module):
    """VGG with batch norm: ``features`` (conv blocks) then a 512-512-``num_classes`` classifier."""

    def __init__(self, cfg: list[int | str], num_classes: int = 10) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        in_channels = 3
        for v in cfg:
            if v == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                layers += [nn.Conv2d(in_channels, int(v), 3, padding=1), nn.BatchNorm2d(int(v)), nn.ReLU(inplace=True)]
                in_channels = int(v)
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(
            nn.Linear(512, 512),
            nn.ReLU(inplace=True),
            nn.Dropout(),
            nn.Linear(512, 512),
            nn.ReLU(inplace=True),
            nn.Dropout(),
            nn.Linear(512, num_classes),
        )
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.features(x), 1))


def _layer_groups(cfg: list[int | str]) -> dict[str, tuple[str, ...]]:
    """One group per conv block (``block1`` ... ``block5``) plus ``classifier``."""
    groups: dict[str, tuple[str, ...]] = {}
    block, convs, index = 1, [], 0
    for v in cfg:
        if v == "M":
            groups[f"block{block}"] = tuple(convs)
            block, convs = block + 1, []
            index += 1
        else:
            convs.append(f"features.{index}")
            index += 3
    groups["classifier"] = ("classifier.*",)
    return groups


def _register(name: str) -> None:
    cfg = _CFGS[name]
    defaults = ModelDefaults(
        family="vgg",
        mean=CIFAR_MEAN,
        std=CIFAR_STD,
        layer_groups=_layer_groups(cfg),
        pretrained={ds: PretrainedSource(f"{_RELEASE}/{f}", top1) for ds, (f, top1) in _PRETRAINED[name].items()},
    )

    @register_model(name, defaults)
    def build(num_classes: int = 10) -> VGG:
        return VGG(cfg, num_classes=num_classes)

    build.__doc__ = f"{name.upper()} with batch norm for 32x32 inputs."


for _name in _CFGS:
    _register(_name)
