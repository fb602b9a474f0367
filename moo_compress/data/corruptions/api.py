"""The public entry point: validate the input, choose the parameter set, run a corruption's hook block by block.

Randomness is drawn per block of images (:func:`block_size`: :data:`BLOCK_SIZE` 32 x 32 images, or as
many larger images as hold the same number of pixels) from a stream keyed by (seed, corruption,
severity, block index). A batch is therefore corrupted identically whether it is processed at once or
in chunks that start on a block boundary (which is how datasets are generated in parallel), and the
same call always returns the same images.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from moo_compress.data.corruptions import blur, digital, noise, weather
from moo_compress.data.corruptions.base import IMPLEMENTATIONS, block_rng, blocks, check_seed, finish
from moo_compress.data.corruptions.param_sets import MIN_SIDE, ParamSet, resolve_param_set
from moo_compress.data.corruptions.params import (
    ALL_CORRUPTIONS,
    BENCHMARK_CORRUPTIONS,
    CORRUPTION_FAMILIES,
    EXTRA_CORRUPTIONS,
    FAMILIES,
    SEVERITIES,
)
from moo_compress.errors import ConfigError, DataFormatError

__all__ = [
    "BLOCK_SIZE",
    "IMAGE_SHAPE",
    "block_size",
    "corrupt",
    "corrupt_into",
    "list_corruptions",
    "resolve_corruptions",
    "check_severity",
    "check_severities",
    "check_corruption_images",
]

_FAMILY_MODULES = (noise, blur, weather, digital)  # importing them registers their hooks

BLOCK_SIZE = 1000
#: The CIFAR image shape (the default parameter set's native size); any (H, W, 3) of at least 16 pixels works.
IMAGE_SHAPE = (32, 32, 3)


def block_size(height: int, width: int) -> int:
    """Images per random-stream block: :data:`BLOCK_SIZE` for 32 x 32 images, and as many images of
    ``height`` x ``width`` as hold the same number of pixels (20 at 224 x 224), at least one.

    Blocks are also the unit of work, so a block of large images needs no more memory than 1,000 CIFAR images.
    """
    return max(1, BLOCK_SIZE * 32 * 32 // (int(height) * int(width)))

_GROUPS: dict[str, tuple[str, ...]] = {
    "benchmark": BENCHMARK_CORRUPTIONS,
    "extra": EXTRA_CORRUPTIONS,
    "all": ALL_CORRUPTIONS,
    **{family: tuple(n for n in ALL_CORRUPTIONS if CORRUPTION_FAMILIES[n] == family) for family in FAMILIES},
}


def list_corruptions(which: str = "all", *, family: str | None = None) -> list[str]:
    """Corruption names in the reference order.

    Args:
        which: ``all`` (19), ``benchmark`` (the 15 of the mCE benchmark) or ``extra`` (the 4 held out),
            or a family name, or a glob pattern over names (``*_blur``).
        family: Keep only this family (``noise``, ``blur``, ``weather``, ``digital``).

    Raises:
        UnknownNameError: for an unknown group or family, or a pattern that matches nothing.
    """
    if family is not None and family not in FAMILIES:
        raise ConfigError(f"unknown corruption family {family!r}; use one of {', '.join(FAMILIES)}")
    if which in _GROUPS:
        names = list(_GROUPS[which])
    else:
        names = IMPLEMENTATIONS.names(which)
        names = [n for n in ALL_CORRUPTIONS if n in names]
        if not names:
            IMPLEMENTATIONS.get(which)  # raises UnknownNameError with close matches
    return [n for n in names if family is None or CORRUPTION_FAMILIES[n] == family]


def _bar_names() -> tuple[str, ...]:
    from moo_compress.data.corruptions_bar.params import BAR_CORRUPTIONS  # a suite of its own, loaded on use

    return tuple(BAR_CORRUPTIONS)


def resolve_corruptions(names: str | Iterable[str] | None) -> tuple[str, ...]:
    """Expands names and groups (``benchmark``, ``extra``, ``all``, family names, and ``bar``: the ten
    held-out CIFAR-10-C-bar corruptions of :mod:`moo_compress.data.corruptions_bar`) into corruption names.

    ``None`` means all 19. Order follows the reference (the 19, then the ten of CIFAR-10-C-bar);
    duplicates are dropped.

    Raises:
        UnknownNameError: for an unknown name, with close matches.
    """
    if names is None:
        return ALL_CORRUPTIONS
    if isinstance(names, str):
        names = [names]
    bar = _bar_names()
    chosen: set[str] = set()
    for name in names:
        if name in _GROUPS:
            chosen.update(_GROUPS[name])
        elif name == "bar":
            chosen.update(bar)
        elif name not in bar:
            IMPLEMENTATIONS.get(name)
            chosen.add(name)
        else:
            chosen.add(name)
    if not chosen:
        raise ConfigError("no corruption was named; name at least one (or 'all')")
    return tuple(n for n in (*ALL_CORRUPTIONS, *bar) if n in chosen)


def check_severity(severity: object) -> int:
    """Returns ``severity`` as an int if it is an integer from 1 to 5, else raises ConfigError."""
    if isinstance(severity, (bool, np.bool_)) or not isinstance(severity, (int, np.integer)) or not (
        SEVERITIES[0] <= severity <= SEVERITIES[-1]
    ):
        raise ConfigError(f"severity must be an integer from 1 to 5, got {severity!r}")
    return int(severity)


def check_severities(severities: int | Iterable[int] | None) -> tuple[int, ...]:
    """Validates severities (``None`` = 1..5); returns them sorted and without duplicates."""
    if severities is None:
        return SEVERITIES
    if isinstance(severities, (int, np.integer)):
        severities = [severities]
    checked = sorted({check_severity(s) for s in severities})
    if not checked:
        raise ConfigError("no severity was named; use integers from 1 to 5")
    return tuple(checked)


def check_corruption_images(images: object) -> np.ndarray:
    """Raises DataFormatError unless ``images`` is a uint8 array of shape (N, H, W, 3), H and W >= 16."""
    if not isinstance(images, np.ndarray):
        raise DataFormatError(f"images must be a NumPy uint8 array of shape (N, H, W, 3); got {type(images).__name__}")
    if images.dtype != np.uint8:
        hint = " (scale [0, 1] floats by 255 and convert with .astype(np.uint8))" if images.dtype.kind == "f" else ""
        raise DataFormatError(f"images must be uint8, got {images.dtype}{hint}")
    if images.ndim == 3 and images.shape[2] == 3:
        raise DataFormatError(f"images must be a batch (N, H, W, 3); for one image {images.shape} pass images[None]")
    if images.ndim != 4 or images.shape[3] != 3:
        raise DataFormatError(
            f"images must have shape (N, H, W, 3), NHWC RGB (e.g. (N, 32, 32, 3) for CIFAR); got {images.shape}"
        )
    if min(images.shape[1:3]) < MIN_SIDE:
        raise DataFormatError(f"images must be at least {MIN_SIDE} x {MIN_SIDE} pixels to be corrupted; got "
                              f"{images.shape[1]} x {images.shape[2]} (upsample them first)")
    return images


def corrupt_into(
    out: np.ndarray,
    images: np.ndarray,
    name: str,
    severity: int,
    *,
    seed: int = 0,
    first_block: int = 0,
    params: str | ParamSet | None = None,
) -> None:
    """Writes the corrupted ``images`` into ``out`` (same shape, uint8; e.g. a memory map), block by block.

    ``first_block`` is the block index of ``images[0]`` within a larger batch: a chunk that starts at
    image ``k * block_size(H, W)`` of a set, passed ``first_block=k``, gets exactly the images that
    :func:`corrupt` of the whole set would give it. ``params`` is as for :func:`corrupt`.
    """
    if name in _bar_names():  # CIFAR-10-C-bar: 32-pixel images, its own parameters
        from moo_compress.data.corruptions_bar import corrupt_bar_into

        corrupt_bar_into(out, images, name, severity, seed=seed, first_block=first_block)
        return
    hook = IMPLEMENTATIONS.get(name)
    severity = check_severity(severity)
    seed = check_seed(seed)
    check_corruption_images(images)
    if out.shape != images.shape or out.dtype != np.uint8:
        raise DataFormatError(f"out must be uint8 of shape {images.shape}, got {out.dtype} {out.shape}")
    height, width = images.shape[1:3]
    param = resolve_param_set(params, height, width).hook_param(name, severity, height, width)
    for block, start, stop in blocks(len(images), first_block, block_size(height, width)):
        rng = block_rng(seed, name, severity, block)
        out[start:stop] = finish(hook(np.ascontiguousarray(images[start:stop]), param, rng))


def corrupt(
    images: np.ndarray, name: str, severity: int, *, seed: int = 0, params: str | ParamSet | None = None
) -> np.ndarray:
    """Applies one corruption at one severity to a batch of images, with the parameters of their size.

    Args:
        images: uint8 array ``(N, H, W, 3)`` (NHWC, RGB; H and W at least 16); a memory map is fine and
            is not modified.
        name: Corruption name, one of :data:`ALL_CORRUPTIONS` (``gaussian_noise`` ... ``saturate``).
        severity: 1 to 5.
        seed: Non-negative seed; the same seed and batch always give the same images.
        params: The parameter set: ``cifar`` (32-pixel recipe), ``tinyimagenet`` (64), ``imagenet`` (224),
            a :class:`~moo_compress.data.corruptions.param_sets.ParamSet`, or None for the set chosen by
            the images' shorter side (up to 45 pixels cifar, up to 119 tinyimagenet, else imagenet).

    Returns:
        A new uint8 array of the same shape: the reference's float result clipped to [0, 255] and
        truncated toward zero, as ``np.uint8`` stores it.

    Raises:
        UnknownNameError: for an unknown corruption or parameter set name (the message lists close matches).
        ConfigError: for a severity outside 1..5 or a negative seed.
        DataFormatError: for images that are not uint8 ``(N, H, W, 3)`` of at least 16 x 16 pixels.
    """
    if name not in _bar_names():
        IMPLEMENTATIONS.get(name)
    check_severity(severity)
    check_corruption_images(images)
    out = np.empty(images.shape, dtype=np.uint8)
    corrupt_into(out, images, name, severity, seed=seed, params=params)
    return out
