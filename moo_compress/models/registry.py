"""The model registry: ``create_model(name)``, ``list_models(pattern)`` and per-model defaults."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from torch import nn

from moo_compress.registry import Registry

__all__ = [
    "CIFAR_MEAN",
    "CIFAR_STD",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "PretrainedSource",
    "ModelDefaults",
    "register_model",
    "create_model",
    "list_models",
    "model_defaults",
]

# chenyaofo/pytorch-cifar-models normalisation (also used by the shared VGG-19 checkpoint).
CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2023, 0.1994, 0.2010)
# akamaster/pytorch_resnet_cifar10 trained its CIFAR ResNets with ImageNet statistics.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class PretrainedSource:
    """A published checkpoint: URL (whose file name carries a SHA-256 prefix) and its top-1."""

    url: str
    top1: float | None = None


@dataclass(frozen=True)
class ModelDefaults:
    """What travels with an architecture: input size, normalisation, layer groups, published weights.

    Attributes:
        family: Architecture family ("vgg", "cifar_resnet", "resnet", "mobilenetv2").
        mean: Per-channel input mean on [0, 1] pixels.
        std: Per-channel input standard deviation on [0, 1] pixels.
        input_size: (channels, height, width).
        layer_groups: Group name -> glob patterns over module names (``features.0``, ``layer1.*``);
            the per-group search spaces and plans refer to these names.
        pretrained: Dataset name -> published checkpoint, downloaded when online.
    """

    family: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    input_size: tuple[int, int, int] = (3, 32, 32)
    layer_groups: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    pretrained: Mapping[str, PretrainedSource] = field(default_factory=dict)


@dataclass(frozen=True)
class _Entry:
    builder: Callable[..., nn.Module]
    defaults: ModelDefaults


_MODELS: Registry[_Entry] = Registry("architecture", natural_order=True)


def register_model(
    name: str, defaults: ModelDefaults
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator registering a builder ``fn(num_classes=...) -> nn.Module`` under ``name``."""

    def wrap(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        _MODELS.register(name, _Entry(builder, defaults))
        return builder

    return wrap


def create_model(name: str, num_classes: int = 10, **kwargs: object) -> nn.Module:
    """Builds a registered architecture with freshly initialised weights, or the model a source names.

    Args:
        name: A registered name, see :func:`list_models`, or a model source (``torchvision:<name>``,
            ``timm:<name>``, ``path/to/file.py:factory``, ``pkg.module:factory``; see
            :mod:`moo_compress.models.sources`).
        num_classes: Size of the classifier output.
        **kwargs: Passed to the architecture's builder.

    Raises:
        UnknownNameError: for an unknown name; the message lists close matches.
    """
    if not isinstance(num_classes, int) or num_classes < 1:
        from moo_compress.errors import ConfigError

        raise ConfigError(f"num_classes must be a positive integer, got {num_classes!r}")
    from moo_compress.models.sources import build_from_source, is_source

    if is_source(name):
        return build_from_source(name, num_classes)
    return _MODELS.get(name).builder(num_classes=num_classes, **kwargs)


def list_models(pattern: str | None = None) -> list[str]:
    """Registered architecture names, optionally filtered by a glob such as ``"resnet*"``."""
    return _MODELS.names(pattern)


def model_defaults(name: str) -> ModelDefaults:
    """The :class:`ModelDefaults` of a registered architecture or a model source (family ``user``, its
    metadata's input size and normalisation, ImageNet's when it has none, and layer groups derived from
    the network: :func:`~moo_compress.models.sources.derive_layer_groups`)."""
    from moo_compress.models.sources import is_source

    if is_source(name):
        return _source_defaults(name)
    return _MODELS.get(name).defaults


@functools.lru_cache(maxsize=32)
def _source_defaults(name: str) -> ModelDefaults:
    from moo_compress.models.sources import build_from_source, derive_layer_groups, source_metadata

    model = build_from_source(name)
    meta = source_metadata(name, model)
    size = meta.get("input_size", (3, 32, 32))
    return ModelDefaults(family="user", mean=meta.get("mean", IMAGENET_MEAN), std=meta.get("std", IMAGENET_STD),
                         input_size=size, layer_groups=derive_layer_groups(model, size))
