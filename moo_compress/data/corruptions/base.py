"""The registry of corruption implementations and the contract every implementation follows.

An implementation ("hook") receives a validated uint8 batch ``(N, H, W, 3)``, the parameter of one
severity from a parameter set (:meth:`~moo_compress.data.corruptions.param_sets.ParamSet.hook_param`: the
table's value, adapted to the image size where the recipe ties it to the size) and a NumPy generator,
and returns either
a float array already clipped to [0, 255] (the reference's ``clip(x, 0, 1) * 255``) or a uint8 array.
:func:`finish` converts floats the way the reference stores them: ``np.uint8(x)`` truncates toward zero.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from moo_compress.data.corruptions.params import PARAMS
from moo_compress.errors import ConfigError
from moo_compress.registry import Registry

__all__ = ["Hook", "IMPLEMENTATIONS", "register", "block_rng", "finish", "to_255"]

Hook = Callable[[np.ndarray, Any, np.random.Generator], np.ndarray]

IMPLEMENTATIONS: Registry[Hook] = Registry("corruption")


def register(name: str) -> Callable[[Hook], Hook]:
    """Registers the decorated hook as the implementation of corruption ``name`` (a name of the table)."""
    if name not in PARAMS:
        raise ValueError(f"{name!r} has no entry in the parameter table")
    return IMPLEMENTATIONS.decorator(name)


def block_rng(seed: int, name: str, severity: int, block: int) -> np.random.Generator:
    """The generator for one block of images: independent streams per (seed, corruption, severity, block).

    The corruption enters through a CRC of its name, not its position, so adding corruptions never
    changes the images of existing ones.
    """
    return np.random.default_rng([int(seed), zlib.crc32(name.encode()), int(severity), int(block)])


def to_255(x: np.ndarray) -> np.ndarray:
    """The reference's ``np.clip(x, 0, 1) * 255``, in place on a float array the hook owns."""
    np.clip(x, 0, 1, out=x)
    x *= 255
    return x


def check_seed(seed: object) -> int:
    """``seed`` as an int if it is a non-negative integer, else raises ConfigError."""
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError(f"seed must be a non-negative integer, got {seed!r}")
    return int(seed)


def blocks(count: int, first_block: int, size: int) -> Iterator[tuple[int, int, int]]:
    """``(block index, start, stop)`` of ``count`` images in blocks of ``size``, the first numbered
    ``first_block``."""
    for offset, start in enumerate(range(0, count, size)):
        yield first_block + offset, start, min(start + size, count)


def finish(result: np.ndarray) -> np.ndarray:
    """uint8 images from a hook's result: floats are clipped to [0, 255] and truncated like ``np.uint8``
    (in place: the result is the hook's own array)."""
    if result.dtype == np.uint8:
        return result
    return np.clip(result, 0, 255, out=result).astype(np.uint8)
