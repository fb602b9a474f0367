"""The registry of CIFAR-10-C-bar implementations and the contract each one follows.

A corruption is two functions. ``sample(rng, count, level)`` draws the random parameters of ``count``
images, as arrays whose first axis is the image (an empty dict for a deterministic corruption).
``apply(images, params, level)`` corrupts a validated uint8 batch ``(N, 32, 32, 3)`` with them and
returns uint8 images, or floats that :func:`to_uint8` clips to [0, 255] and truncates as the
reference's ``np.clip(x, 0, 255).astype(np.uint8)`` does. Keeping the draw apart from the arithmetic
lets a test feed the same parameters to a per-image restatement of the published definition.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from moo_compress.data.corruptions_bar.params import PARAMS
from moo_compress.registry import Registry

__all__ = ["Params", "Sampler", "Applier", "BarCorruption", "IMPLEMENTATIONS", "register", "no_parameters", "to_uint8"]

Params = dict[str, np.ndarray]
Sampler = Callable[[np.random.Generator, int, float], Params]
Applier = Callable[[np.ndarray, Params, float], np.ndarray]


@dataclass(frozen=True)
class BarCorruption:
    """The two halves of one corruption: drawing its random parameters, and applying them."""

    sample: Sampler
    apply: Applier


IMPLEMENTATIONS: Registry[BarCorruption] = Registry("CIFAR-10-C-bar corruption")


def register(name: str, *, sample: Sampler, apply: Applier) -> BarCorruption:
    """Registers the implementation of corruption ``name`` (a name of the parameter table)."""
    if name not in PARAMS:
        raise ValueError(f"{name!r} has no entry in the CIFAR-10-C-bar parameter table")
    return IMPLEMENTATIONS.register(name, BarCorruption(sample, apply))


def no_parameters(rng: np.random.Generator, count: int, level: float) -> Params:
    """The sampler of a deterministic corruption: draws nothing."""
    return {}


def to_uint8(result: np.ndarray) -> np.ndarray:
    """uint8 images from an ``apply`` result: floats are clipped to [0, 255] and truncated toward zero."""
    if result.dtype == np.uint8:
        return result
    return np.clip(result, 0, 255).astype(np.uint8)
