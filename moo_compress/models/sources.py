"""Models named by where they come from, next to the built-in zoo's registry names.

A *model source* is a string with a colon:

- ``torchvision:<name>``: a torchvision classification model (``torchvision.models.get_model``),
  built with ``num_classes`` outputs; its weights come from a checkpoint (``--weights``);
- ``timm:<name>``: a timm model (the ``timm`` extra), likewise; its pretrained configuration gives
  the input size and normalisation;
- ``path/to/file.py:factory`` or ``pkg.module:factory``: a function (or class) of the user's that
  returns an ``nn.Module``, called with ``num_classes=`` when it takes that argument; the module it
  returns carries its own weights unless a checkpoint is given;
- ``pickle:<path>``: a whole module saved with ``torch.save(model, path)`` (how the Python API passes
  an ``nn.Module`` object; its class must be importable where it is loaded).

Input size and normalisation come from the model's own metadata where it has it (a timm-style
``pretrained_cfg``/``default_cfg`` dict, or ``mean``/``std``/``input_size`` attributes), else from what
the caller gives (``--mean``/``--std``/``--input-size``; a checkpoint's ``mean``/``std``). Layer groups
for per-group plans are derived from the network itself (:func:`derive_layer_groups`).
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import importlib.util
import inspect
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from moo_compress.errors import CheckpointError, ConfigError, UnknownNameError

__all__ = ["SOURCE_KINDS", "canonical_source", "describe", "is_source", "torchvision_published", "build_from_source",
           "source_metadata", "derive_layer_groups", "source_slug"]

#: The kinds of model source, by prefix (``file`` and ``module`` are told apart by the ``.py`` suffix).
SOURCE_KINDS = ("torchvision", "timm", "pickle", "file", "module")


def is_source(name: str) -> bool:
    """Whether ``name`` is a model source (has a colon) rather than a registry name."""
    return isinstance(name, str) and ":" in name


def _parse(name: str) -> tuple[str, str]:
    prefix, _, rest = name.partition(":")
    if prefix == "pickle":
        return prefix, rest
    if prefix in ("torchvision", "timm"):
        if not rest:
            raise ConfigError(f"model source {name!r} names no model; write {prefix}:<name>, e.g. "
                              f"{'torchvision:resnet18' if prefix == 'torchvision' else 'timm:resnet18'}")
        return prefix, rest
    target, _, attr = name.rpartition(":")
    if not target or not attr.isidentifier():
        raise ConfigError(f"model source {name!r} is not 'path/to/file.py:factory', 'pkg.module:factory', "
                          "'torchvision:<name>' or 'timm:<name>'")
    return ("file" if target.endswith(".py") else "module"), name


def canonical_source(name: str) -> str:
    """The source with a model file's path made absolute (so that runs and cache entries started from
    different folders name the same file the same way); other sources unchanged."""
    kind, rest = _parse(name)
    if kind != "file":
        return name
    target, _, attr = rest.rpartition(":")
    return f"{Path(target).expanduser().resolve()}:{attr}"


def source_slug(name: str) -> str:
    """A file-name-safe short form of a source (``model.py:build`` -> ``model-build``)."""
    kind, rest = _parse(name)
    if kind == "pickle":
        text = Path(rest).stem
    elif kind in ("torchvision", "timm"):
        text = f"{kind}-{rest}"
    else:
        target, _, attr = rest.rpartition(":")
        text = f"{Path(target).stem if kind == 'file' else target.rsplit('.', 1)[-1]}-{attr}"
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-") or "model"


@functools.cache
def _factory(name: str) -> Callable[..., Any]:
    kind, rest = _parse(name)
    target, _, attr = rest.rpartition(":")
    if kind == "file":
        path = Path(target).expanduser().resolve()
        if not path.is_file():
            raise ConfigError(f"model file {path} does not exist; pass path/to/file.py:factory")
        module_name = f"_moo_compress_user_{hashlib.sha1(str(path).encode()).hexdigest()[:12]}"
        spec = importlib.util.spec_from_file_location(module_name, path)
        module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
        sys.modules[module_name] = module  # so that pickling and dataclasses inside the file work
        try:
            spec.loader.exec_module(module)  # type: ignore[union-attr]
        except Exception as exc:  # noqa: BLE001 - the user's code: any error becomes one line
            del sys.modules[module_name]
            raise ConfigError(f"model file {path} does not import: {describe(exc)}") from None
    else:
        try:
            module = importlib.import_module(target)
        except Exception as exc:  # noqa: BLE001
            raise ConfigError(f"module {target!r} does not import: {describe(exc)}") from None
    factory = getattr(module, attr, None)
    if not callable(factory):
        names = sorted(n for n, v in vars(module).items() if callable(v) and not n.startswith("_"))
        raise ConfigError(f"{target} has no callable {attr!r} (callables there: {', '.join(names) or 'none'})")
    return factory


def build_from_source(name: str, num_classes: int | None = None) -> nn.Module:
    """Builds the model a source names (``num_classes`` outputs where the builder takes that argument).

    Raises:
        ConfigError: if the source is malformed, its file or module does not import, or its factory
            returns no ``nn.Module``.
        UnknownNameError: for an unknown torchvision or timm model name (the message lists close ones).
    """
    kind, rest = _parse(name)
    kwargs = {} if num_classes is None else {"num_classes": num_classes}
    if kind == "pickle":
        try:
            model = torch.load(rest, map_location="cpu", weights_only=False)
        except Exception as exc:  # noqa: BLE001 - e.g. the module's class is not importable here
            raise ConfigError(f"the saved model {rest} does not load: {describe(exc)}") from None
        if not isinstance(model, nn.Module):
            raise ConfigError(f"{rest} holds {type(model).__name__}, not a torch.nn.Module")
        return model
    if kind == "torchvision":
        import torchvision

        valid = torchvision.models.list_models(module=torchvision.models)
        if rest not in valid:
            from moo_compress.registry import Registry

            registry: Registry[str] = Registry("torchvision classification model")
            for v in valid:
                registry.register(v, v)
            raise UnknownNameError(registry.unknown_message(rest))
        return torchvision.models.get_model(rest, weights=None, **kwargs)
    if kind == "timm":
        try:
            import timm
        except ImportError:
            raise ConfigError("timm models need the timm package: pip install 'moo_compress[timm]'") from None
        if not timm.is_model(rest):
            close = timm.list_models(f"*{rest}*")[:5]
            raise UnknownNameError(f"unknown timm model {rest!r}" + (f"; close: {', '.join(close)}" if close else ""))
        return timm.create_model(rest, pretrained=False, **kwargs)
    factory = _factory(name)
    try:
        takes = "num_classes" in inspect.signature(factory).parameters
    except (TypeError, ValueError):
        takes = False
    try:
        model = factory(**kwargs) if takes else factory()
    except Exception as exc:  # noqa: BLE001 - the user's code
        raise ConfigError(f"{name} failed: {describe(exc)}") from None
    if not isinstance(model, nn.Module):
        raise ConfigError(f"{name} returned {type(model).__name__}, not a torch.nn.Module; make the factory "
                          "return the model")
    return model


def torchvision_published(name: str, weights: str, num_classes: int) -> tuple[nn.Module, dict[str, Any]]:
    """A torchvision model with its published weights (``weights``: an enum name such as ``DEFAULT`` or
    ``IMAGENET1K_V1``), downloaded by torchvision into its cache, and the normalisation and input size its
    transforms use.

    Raises:
        ConfigError: if the source is not ``torchvision:<name>``, the enum name is unknown (the message lists
            the valid ones), the download fails or is disabled (``$MOO_COMPRESS_OFFLINE``), or the published
            head does not have ``num_classes`` outputs.
    """
    import os

    import torchvision

    kind, rest = _parse(name)
    if kind != "torchvision":
        raise ConfigError(f"--weights {weights} names published weights, which only torchvision:<name> models have; "
                          "pass the path of a checkpoint")
    build_from_source(name, num_classes)  # validates the model name first
    enum = torchvision.models.get_model_weights(rest)
    valid = ["DEFAULT", *(w.name for w in enum)]
    if weights not in valid:
        raise ConfigError(f"--weights {weights}: not a file, and not published weights of {rest} "
                          f"(valid: {', '.join(valid)})")
    chosen = enum[weights] if weights != "DEFAULT" else enum.DEFAULT
    outputs = len(chosen.meta.get("categories") or [])
    if outputs and outputs != num_classes:
        raise ConfigError(f"{name} {chosen.name} has {outputs} outputs but the data has {num_classes} classes; "
                          "fine-tune it on your data and pass that checkpoint with --weights PATH")
    if os.environ.get("MOO_COMPRESS_OFFLINE"):
        raise ConfigError(f"downloading {name} {chosen.name} is disabled ($MOO_COMPRESS_OFFLINE); pass --weights PATH")
    try:
        model = torchvision.models.get_model(rest, weights=chosen)
    except Exception as exc:  # noqa: BLE001 - no network, a corrupt download ...
        raise ConfigError(f"downloading {name} {chosen.name} failed ({describe(exc)}); pass --weights PATH") from None
    transform = chosen.transforms()
    crop = getattr(transform, "crop_size", [224])
    resize = getattr(transform, "resize_size", None) or crop
    interpolation = getattr(getattr(transform, "interpolation", None), "value", "bilinear")
    meta = {"mean": tuple(transform.mean), "std": tuple(transform.std), "input_size": (3, int(crop[0]), int(crop[0])),
            "crop_pct": int(crop[0]) / int(resize[0]), "interpolation": str(interpolation)}
    return model, meta


def _stats(value: Any) -> tuple[float, float, float] | None:
    if value is None:
        return None
    values = tuple(float(v) for v in (value if isinstance(value, (list, tuple)) else [value] * 3))
    return values if len(values) == 3 else None


def source_metadata(name: str, model: nn.Module) -> dict[str, Any]:
    """Input size, normalisation and evaluation resize the model's own metadata gives (keys ``mean``,
    ``std``, ``input_size``, ``crop_pct``, ``interpolation``, as in timm's pretrained configuration; absent
    when it gives none). torchvision models get ImageNet statistics (their input size is the caller's to
    give, e.g. 32 for a network fine-tuned on CIFAR, 224 for one on upsampled images).
    """
    kind, _ = _parse(name)
    out: dict[str, Any] = {}
    cfg = getattr(model, "pretrained_cfg", None) or getattr(model, "default_cfg", None)
    if isinstance(cfg, dict):
        keys = ("mean", "std", "input_size", "crop_pct", "interpolation")
        out.update({k: cfg[k] for k in keys if cfg.get(k) is not None})
    for key in ("mean", "std", "input_size"):
        if key not in out and getattr(model, key, None) is not None:
            out[key] = getattr(model, key)
    if kind == "torchvision":
        from moo_compress.models.registry import IMAGENET_MEAN, IMAGENET_STD

        out.setdefault("mean", IMAGENET_MEAN)  # torchvision's weights are ImageNet-normalised
        out.setdefault("std", IMAGENET_STD)
    if "mean" in out:
        out["mean"] = _stats(out["mean"])
    if "std" in out:
        out["std"] = _stats(out["std"])
    if "input_size" in out:
        size = tuple(int(v) for v in out["input_size"])
        out["input_size"] = size if len(size) == 3 else (3, *size[-2:])
    if "crop_pct" in out:
        out["crop_pct"] = float(out["crop_pct"])
    if "interpolation" in out:
        out["interpolation"] = str(out["interpolation"])
    return {k: v for k, v in out.items() if v is not None}


def derive_layer_groups(model: nn.Module, input_size: tuple[int, int, int] = (3, 32, 32)) -> dict[str, tuple[str, ...]]:
    """Layer groups of any CNN: its convolutions by down-sampling stage (the spatial size of their output,
    ``stage1`` the largest, so a stage starts with the strided convolution that enters it), and its
    linear layers as ``head``; by depth (quarters of the convolutions in order) when it never down-samples.

    Raises:
        CheckpointError: if a forward pass on one ``input_size`` image fails (the message says why).
    """
    sizes: dict[str, int] = {}
    heads: list[str] = []
    handles = []
    def record(name: str) -> Callable[..., None]:
        def hook(_module: nn.Module, _args: tuple[Any, ...], output: torch.Tensor) -> None:  # None: output unchanged
            sizes.setdefault(name, int(output.shape[-1]))
        return hook

    for module_name, module in model.named_modules():
        if isinstance(module, nn.Conv2d):
            handles.append(module.register_forward_hook(record(module_name)))
        elif isinstance(module, nn.Linear):
            heads.append(module_name)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(1, *input_size))
    except Exception as exc:  # noqa: BLE001 - the user's network
        raise CheckpointError(f"a forward pass on a {tuple(input_size)} image failed ({describe(exc)}); "
                              "give the model's input size") from None
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    convs = list(sizes)  # in the order the forward pass reached them
    resolutions = sorted(set(sizes.values()), reverse=True)
    groups: dict[str, list[str]] = {}
    if len(resolutions) > 1:
        for conv in convs:
            groups.setdefault(f"stage{resolutions.index(sizes[conv]) + 1}", []).append(conv)
    elif convs:
        quarters = max(1, -(-len(convs) // 4))
        for i, conv in enumerate(convs):
            groups.setdefault(f"depth{i // quarters + 1}", []).append(conv)
    if heads:
        groups["head"] = heads
    return {k: tuple(_escape(n) for n in v) for k, v in groups.items()}


def describe(exc: BaseException) -> str:
    """``Type: message`` of an exception on one line (the first line of its message)."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0] if lines else ''}".rstrip(": ")


def _escape(name: str) -> str:
    """A module name as a glob that matches only itself."""
    return re.sub(r"([*?\[])", r"[\1]", name)
