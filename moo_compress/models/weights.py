"""Checkpoints: reading any common layout, resolving where weights come from, loading them.

Weights are resolved in one place (:func:`resolve_weights`), used by every command:

1. an explicit path (``--weights PATH``);
2. the weights folder (``$MOO_COMPRESS_WEIGHTS``, default ``~/.cache/moo_compress/weights``),
   searched by architecture and dataset name (``vgg19_bn-cifar10.pt``, ``cifar10/resnet20-*.th``);
3. the published checkpoint for the architecture and dataset, downloaded with ``torch.hub`` into the
   weights folder and checked against the SHA-256 prefix in its file name;
4. otherwise :class:`~moo_compress.errors.WeightsNotFoundError`, naming every way to get weights.

Normalisation statistics travel with a checkpoint: a ``mean``/``std`` entry in the checkpoint dict,
or in a sidecar JSON (``<file>.json`` or ``<stem>.json``); else the architecture's defaults apply.
"""

from __future__ import annotations

import json
import os
import re
import urllib.error
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from moo_compress import paths
from moo_compress.errors import CheckpointError, ConfigError, WeightsNotFoundError
from moo_compress.fileio import atomic_open, sha256_file
from moo_compress.models.registry import create_model, model_defaults
from moo_compress.models.sources import is_source

__all__ = [
    "Checkpoint",
    "PretrainedModel",
    "read_checkpoint",
    "load_state_dict_strict",
    "save_checkpoint",
    "find_weights",
    "resolve_weights",
    "load_pretrained",
    "checkpoint_sha256",
    "materialize_source",
]

_SUFFIXES = (".pt", ".pth", ".th", ".ckpt", ".bin")
_PREFIXES = ("module.", "_orig_mod.")


@dataclass(frozen=True)
class Checkpoint:
    """A state_dict and whatever metadata came with it (checkpoint entries and sidecar JSON)."""

    state_dict: dict[str, torch.Tensor]
    metadata: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None


def _strip_prefixes(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out = {}
    for key, value in state_dict.items():
        for prefix in _PREFIXES:
            while key.startswith(prefix):
                key = key[len(prefix) :]
        out[key] = value
    return out


def _is_state_dict(obj: object) -> bool:
    return isinstance(obj, Mapping) and bool(obj) and all(isinstance(v, torch.Tensor) for v in obj.values())


def _sidecar(path: Path) -> dict[str, Any]:
    for candidate in (path.with_name(path.name + ".json"), path.with_suffix(".json")):
        if candidate.is_file():
            try:
                return json.loads(candidate.read_text())
            except json.JSONDecodeError as exc:
                raise CheckpointError(f"sidecar {candidate} is not valid JSON ({exc}); fix or delete it") from None
    return {}


def read_checkpoint(path: str | os.PathLike[str]) -> Checkpoint:
    """Reads a checkpoint file in any of the common layouts.

    Accepts a raw state_dict or a dict holding one under ``state_dict`` or ``model``; strips
    ``module.`` (DataParallel) and ``_orig_mod.`` (torch.compile) prefixes. Other JSON-able entries
    of the dict, and a sidecar JSON, become :attr:`Checkpoint.metadata`.

    Raises:
        CheckpointError: if the file is missing, unreadable or holds no state_dict.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist; pass the path of a saved state_dict")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for corrupt or foreign files
        raise CheckpointError(f"cannot read checkpoint {path}: {exc.__class__.__name__}: {str(exc)[:200]}") from None
    metadata: dict[str, Any] = {}
    if _is_state_dict(obj):
        state_dict = obj
    elif isinstance(obj, Mapping):
        inner = next((obj[k] for k in ("state_dict", "model") if _is_state_dict(obj.get(k))), None)
        if inner is None:
            raise CheckpointError(
                f"checkpoint {path} holds no state_dict: expected a dict of tensors, or a dict with a "
                f"'state_dict' or 'model' entry (found keys: {', '.join(map(str, list(obj)[:8]))})"
            )
        state_dict = inner
        metadata = {k: v for k, v in obj.items() if k not in ("state_dict", "model") and _jsonable(v)}
    else:
        raise CheckpointError(f"checkpoint {path} holds a {type(obj).__name__}, not a state_dict")
    sidecar = _sidecar(path)
    return Checkpoint(_strip_prefixes(state_dict), {**sidecar, **metadata}, path)


def _jsonable(value: object) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True


def load_state_dict_strict(model: nn.Module, state_dict: Mapping[str, torch.Tensor], *, source: str) -> None:
    """Loads ``state_dict`` into ``model``, raising one clear error on any key or shape mismatch.

    Raises:
        CheckpointError: listing missing keys, unexpected keys and shape mismatches.
    """
    expected = model.state_dict()
    # Checkpoints from before PyTorch 0.4.1 lack BN's num_batches_tracked; it does not affect eval.
    missing = [k for k in expected if k not in state_dict and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state_dict if k not in expected]
    shapes = [
        f"{k} {tuple(state_dict[k].shape)} vs {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state_dict and tuple(state_dict[k].shape) != tuple(v.shape)
    ]
    if missing or unexpected or shapes:

        def head(items: list[str]) -> str:
            more = f" (+{len(items) - 5} more)" if len(items) > 5 else ""
            return ", ".join(items[:5]) + more

        parts = []
        if missing:
            parts.append(f"missing keys: {head(missing)}")
        if unexpected:
            parts.append(f"unexpected keys: {head(unexpected)}")
        if shapes:
            parts.append(f"shape mismatches (checkpoint vs model): {head(shapes)}")
        raise CheckpointError(
            f"{source} does not fit {type(model).__name__}: {'; '.join(parts)}. "
            "Check --arch and the dataset (number of classes)."
        )
    model.load_state_dict(state_dict, strict=False)


def save_checkpoint(path: str | os.PathLike[str], model: nn.Module, *, metadata: Mapping[str, Any]) -> Path:
    """Saves ``{"state_dict": ..., **metadata}`` atomically; metadata must be JSON-able."""
    path = Path(path)
    bad = [k for k, v in metadata.items() if not _jsonable(v)]
    if bad:
        raise ConfigError(f"checkpoint metadata must be JSON-serialisable; offending keys: {bad}")
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    with atomic_open(path, "wb") as handle:
        torch.save({"state_dict": state, **metadata}, handle)
    return path


def _dataset_tag(name: str) -> str | None:
    match = re.search(r"cifar-?(100|10)(?!\d)", name.lower())
    return f"cifar{match.group(1)}" if match else None


def _arch_matches(stem: str, arch: str) -> bool:
    pattern = rf"(?:cifar-?10{{1,2}}[_-])?{re.escape(arch)}(?:_bn)?(?![0-9a-z])"
    return re.match(pattern, stem.lower()) is not None


def find_weights(directory: str | os.PathLike[str], arch: str, dataset: str) -> Path | None:
    """Finds a checkpoint for ``arch`` trained on ``dataset`` in ``directory``.

    Looks at ``directory/*`` and ``directory/<dataset>/*`` for files named after the architecture
    (``vgg19_bn-cifar10.pt``, ``cifar10_vgg19_bn-57191229.pt``, ``resnet20-12fca82f.th``). Files naming
    the dataset win over files naming none; files naming another dataset are skipped.
    """
    directory = Path(directory).expanduser()
    tagged, untagged = [], []
    for folder in (directory / dataset, directory):
        if not folder.is_dir():
            continue
        for file in sorted(folder.iterdir()):
            if file.suffix not in _SUFFIXES or not file.is_file() or not _arch_matches(file.stem, arch):
                continue
            tag = _dataset_tag(file.stem) or (dataset if folder.name == dataset else None)
            if tag == dataset:
                tagged.append(file)
            elif tag is None:
                untagged.append(file)
    found = tagged + untagged
    return found[0] if found else None


def resolve_weights(
    arch: str,
    dataset: str,
    *,
    weights: str | os.PathLike[str] | None = None,
    weights_dir: str | os.PathLike[str] | None = None,
    download: bool = True,
) -> Path:
    """Finds the checkpoint to use for ``arch`` on ``dataset`` (see the module docstring for the order).

    Raises:
        CheckpointError: if an explicit ``weights`` path does not exist.
        WeightsNotFoundError: if nothing was found; the message lists every way to get weights.
    """
    defaults = model_defaults(arch)  # raises UnknownNameError first
    if weights is not None:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise CheckpointError(f"--weights {path} does not exist; pass the path of a saved checkpoint")
        return path
    folder = paths.weights_dir(weights_dir)
    found = find_weights(folder, arch, dataset)
    if found is not None:
        return found
    source = defaults.pretrained.get(dataset)
    download_note = "no published checkpoint is known for this architecture and dataset"
    if source is not None and download and not os.environ.get("MOO_COMPRESS_OFFLINE"):
        try:
            return _download(source.url, folder)
        except (urllib.error.URLError, OSError, RuntimeError) as exc:
            download_note = f"downloading {source.url} failed ({str(exc)[:120]})"
    elif source is not None:
        download_note = f"download disabled (published checkpoint: {source.url})"
    raise WeightsNotFoundError(
        f"no weights for {arch} on {dataset}: looked in {folder} (set ${paths.WEIGHTS_ENV} or pass "
        f"--weights-dir); {download_note}. Pass --weights PATH, put a file named like "
        f"'{arch}-{dataset}.pt' in {folder}, or train one with "
        f"'python -m moo_compress.train --arch {arch} --dataset {dataset} --out {folder}/{arch}-{dataset}.pt'"
    )


def _download(url: str, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / Path(url).name
    if not target.is_file():
        # check_hash compares the SHA-256 prefix embedded in the release file name.
        torch.hub.download_url_to_file(url, str(target), hash_prefix=_hash_prefix(target.name), progress=True)
    return target


def _hash_prefix(name: str) -> str | None:
    match = re.search(r"-([0-9a-f]{8,})\.", name)
    return match.group(1) if match else None


_SHA_CACHE: dict[tuple[str, int, int], str] = {}


def checkpoint_sha256(path: str | os.PathLike[str]) -> str:
    """SHA-256 of a checkpoint file, memoised per (path, size, mtime) within the process."""
    stat = os.stat(path)
    key = (str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _SHA_CACHE:
        _SHA_CACHE[key] = sha256_file(path)
    return _SHA_CACHE[key]


@dataclass(frozen=True)
class PretrainedModel:
    """A model with loaded weights and everything needed to feed and identify it.

    Attributes:
        model: The network, in eval mode, on the CPU.
        arch: Registered architecture name.
        dataset: Dataset the weights were trained on.
        num_classes: Classifier outputs.
        mean: Input normalisation mean (checkpoint's, else the architecture's).
        std: Input normalisation std.
        weights_path: The checkpoint file.
        weights_sha256: Its SHA-256, the identity used by caches.
        metadata: Checkpoint metadata (accuracy, recipe...).
        input_size: (channels, height, width) the model expects: the checkpoint's ``input_size``, else
            the architecture's; None for a model source that names none (it takes the data as it is).
            Small images of one size are resized to it whole (bilinear, no crop); natural-resolution
            images are resized and centre-cropped by ``crop_pct`` and ``interpolation``.
        crop_pct: Fraction of the resized image its evaluation crop keeps (the checkpoint's or the model's
            metadata; None: the ImageNet convention, 0.875).
        interpolation: Its evaluation resize's interpolation (None: bilinear).
    """

    model: nn.Module
    arch: str
    dataset: str
    num_classes: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    weights_path: Path
    weights_sha256: str
    metadata: dict[str, Any] = field(default_factory=dict)
    input_size: tuple[int, int, int] | None = None
    crop_pct: float | None = None
    interpolation: str | None = None


def _head_outputs(model: nn.Module, state_dict: Mapping[str, torch.Tensor]) -> int | None:
    linears = [name for name, m in model.named_modules() if isinstance(m, nn.Linear)]
    weight = state_dict.get(f"{linears[-1]}.weight") if linears else None
    return int(weight.shape[0]) if weight is not None and weight.ndim == 2 else None


def _triple(value: object, name: str, source: Path, *, cast: type = float) -> tuple[Any, Any, Any] | None:
    """A checkpoint entry of three numbers (``mean``, ``std``: floats; ``input_size``: positive ints), or None."""
    if value is None:
        return None
    try:
        numbers = tuple(cast(v) for v in value)  # type: ignore[attr-defined]
    except (TypeError, ValueError):
        numbers = ()
    if len(numbers) != 3 or (cast is int and min(numbers) < 1):
        shape = "(channels, height, width)" if cast is int else "three numbers"
        raise CheckpointError(f"{source}: '{name}' must be {shape}, got {value!r}")
    return numbers  # type: ignore[return-value]


def load_pretrained(
    arch: str,
    dataset: str = "cifar10",
    *,
    weights: str | os.PathLike[str] | None = None,
    weights_dir: str | os.PathLike[str] | None = None,
    num_classes: int | None = None,
    download: bool = True,
) -> PretrainedModel:
    """Builds ``arch`` and loads its weights, resolved by :func:`resolve_weights`.

    Args:
        arch: Registered architecture name.
        dataset: Dataset the weights belong to (``cifar10``, ``cifar100``).
        weights: Explicit checkpoint path.
        weights_dir: Folder searched by name (defaults to ``$MOO_COMPRESS_WEIGHTS``).
        num_classes: Expected classifier outputs; inferred from the checkpoint when None.
        download: Whether a published checkpoint may be downloaded.

    Raises:
        CheckpointError: if the checkpoint cannot be read, does not fit, or has the wrong class count.
        WeightsNotFoundError: if no weights could be found.
    """
    path = resolve_weights(arch, dataset, weights=weights, weights_dir=weights_dir, download=download)
    ckpt = read_checkpoint(path)
    if ckpt.metadata.get("arch") not in (None, arch):
        raise CheckpointError(f"{path} was saved for arch {ckpt.metadata['arch']!r}, not {arch!r}; pass --arch "
                              f"{ckpt.metadata['arch']}")
    model = create_model(arch)
    found = _head_outputs(model, ckpt.state_dict)
    if num_classes is not None and found is not None and found != num_classes:
        raise CheckpointError(
            f"{path} has {found} outputs but {dataset} has {num_classes} classes; pass weights trained on {dataset}"
        )
    classes = num_classes or found or 10
    if classes != 10:
        model = create_model(arch, num_classes=classes)
    load_state_dict_strict(model, ckpt.state_dict, source=str(path))
    model.eval()
    defaults = model_defaults(arch)
    mean = _triple(ckpt.metadata.get("mean"), "mean", path) or defaults.mean
    std = _triple(ckpt.metadata.get("std"), "std", path) or defaults.std
    return PretrainedModel(
        model=model,
        arch=arch,
        dataset=str(ckpt.metadata.get("dataset", dataset)),
        num_classes=classes,
        mean=mean,
        std=std,
        weights_path=path,
        weights_sha256=checkpoint_sha256(path),
        metadata=ckpt.metadata,
        input_size=_triple(ckpt.metadata.get("input_size"), "input_size", path, cast=int) or (
            None if is_source(arch) else tuple(defaults.input_size)),
        crop_pct=None if ckpt.metadata.get("crop_pct") is None else float(ckpt.metadata["crop_pct"]),
        interpolation=None if ckpt.metadata.get("interpolation") is None else str(ckpt.metadata["interpolation"]),
    )


def materialize_source(
    name: str,
    *,
    num_classes: int,
    weights: str | os.PathLike[str] | None = None,
    mean: tuple[float, float, float] | None = None,
    std: tuple[float, float, float] | None = None,
    input_size: int | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
) -> Path:
    """The checkpoint of a model source, written once into the cache, so that a source travels to
    worker processes and into cache keys like any checkpoint (by path and SHA-256).

    The model is built from the source (its factory's own weights) and ``weights`` loaded into it when
    given, or for ``torchvision:<name>`` the published weights ``weights`` names (``DEFAULT``,
    ``IMAGENET1K_V1``..., downloaded when online). Normalisation: ``mean``/``std`` when given, else the
    checkpoint's, else the model's own metadata (:func:`~moo_compress.models.sources.source_metadata`);
    input size likewise (``input_size`` pixels square), recorded only when known: a model without one
    takes the data as it is.

    Raises:
        ConfigError: if no normalisation is known, or the model's outputs do not match ``num_classes``
            (the data's classes); the message says what to pass.
        CheckpointError: if ``weights`` do not fit the model.
    """
    import hashlib

    weights_key = None if weights is None else (str(Path(weights).expanduser().resolve()), _mtime(weights))
    memo = (name, num_classes, weights_key, mean and tuple(mean), std and tuple(std), input_size,
            str(paths.cache_dir(cache_dir)))
    if memo in _MATERIALIZED and _MATERIALIZED[memo].is_file():  # a run builds several specs of one model
        return _MATERIALIZED[memo]
    from moo_compress.models.sources import (
        build_from_source,
        describe,
        source_metadata,
        source_slug,
        torchvision_published,
    )

    metadata: dict[str, Any] = {}
    published = weights is not None and re.fullmatch(r"[A-Z0-9_]+", str(weights)) is not None and \
        not Path(weights).exists()
    if published:  # an enum name such as DEFAULT or IMAGENET1K_V1, not a file
        model, metadata = torchvision_published(name, str(weights), num_classes)
    else:
        model = build_from_source(name, num_classes)
    if weights is not None and not metadata:
        ckpt = read_checkpoint(weights)
        load_state_dict_strict(model, ckpt.state_dict, source=str(weights))
        metadata = ckpt.metadata
    own = source_metadata(name, model)
    known = (3, int(input_size), int(input_size)) if input_size else (
        _triple(metadata.get("input_size"), "input_size", Path(str(weights)), cast=int) or own.get("input_size"))
    size = tuple(known or (3, 32, 32))
    mean = mean or _triple(metadata.get("mean"), "mean", Path(str(weights))) or own.get("mean")
    std = std or _triple(metadata.get("std"), "std", Path(str(weights))) or own.get("std")
    if mean is None or std is None:
        raise ConfigError(f"{name}: the input normalisation is unknown; pass --mean R,G,B --std R,G,B (Python: "
                          "mean=..., std=...), the statistics the model was trained with")
    model.eval()
    try:
        with torch.no_grad():
            outputs = model(torch.zeros(1, *size)).shape[-1]
    except Exception as exc:  # noqa: BLE001 - the user's network
        raise ConfigError(f"{name}: a forward pass on a {size} image failed ({describe(exc)}); give its input "
                          "size (--input-size)") from None
    if outputs != num_classes:
        raise ConfigError(f"{name} has {outputs} outputs but the data has {num_classes} classes; build the model "
                          f"with {num_classes} outputs (a factory taking num_classes= gets it) or use matching data")
    digest = hashlib.sha256()
    for key, tensor in sorted(model.state_dict().items()):
        digest.update(key.encode())
        digest.update(tensor.detach().cpu().float().contiguous().numpy().tobytes())
    digest.update(repr((name, tuple(mean), tuple(std), known, metadata.get("crop_pct", own.get("crop_pct")),
                        metadata.get("interpolation", own.get("interpolation")))).encode())
    path = paths.cache_dir(cache_dir) / "sources" / f"{source_slug(name)}-{digest.hexdigest()[:16]}.pt"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        save_checkpoint(path, model, metadata={"arch": name, "mean": [float(v) for v in mean],
                                               "std": [float(v) for v in std],
                                               "input_size": list(known) if known else None,
                                               "num_classes": int(num_classes),
                                               **{k: v for k in ("crop_pct", "interpolation")
                                                  if (v := metadata.get(k, own.get(k))) is not None}})
    _MATERIALIZED[memo] = path
    return path


_MATERIALIZED: dict[tuple[Any, ...], Path] = {}


def _mtime(path: str | os.PathLike[str]) -> int | None:
    try:
        return Path(path).expanduser().stat().st_mtime_ns
    except OSError:
        return None  # not a file: an enum name such as DEFAULT
