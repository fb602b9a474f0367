"""ResNet-18/34/50 (torchvision definitions and key names) with a CIFAR stem.

The stem is a 3x3 stride-1 convolution without max-pooling, as usual for 32x32 inputs.
"""

from __future__ import annotations

from collections.abc import Callable

import torchvision
from torch import nn

from moo_compress.models.registry import CIFAR_MEAN, CIFAR_STD, ModelDefaults, register_model

__all__: list[str] = []

_GROUPS = {
    "stem": ("conv1",),
    "layer1": ("layer1.*",),
    "layer2": ("layer2.*",),
    "layer3": ("layer3.*",),
    "layer4": ("layer4.*",),
    "head": ("fc",),
}


def _cifar_stem(factory: Callable[..., torchvision.models.ResNet], num_classes: int) -> nn.Module:
    model = factory(weights=None, num_classes=num_classes)
    model.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
    nn.init.kaiming_normal_(model.conv1.weight, mode="fan_out", nonlinearity="relu")
    model.maxpool = nn.Identity()
    return model


def _register(name: str, factory: Callable[..., torchvision.models.ResNet]) -> None:
    defaults = ModelDefaults(family="resnet", mean=CIFAR_MEAN, std=CIFAR_STD, layer_groups=_GROUPS)

    @register_model(name, defaults)
    def build(num_classes: int = 10) -> nn.Module:
        return _cifar_stem(factory, num_classes)

    build.__doc__ = f"torchvision {name} with a 3x3 stride-1 stem and no max-pool."


_register("resnet18", torchvision.models.resnet18)
_register("resnet34", torchvision.models.resnet34)
_register("resnet50", torchvision.models.resnet50)
