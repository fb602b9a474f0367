"""Starburst corruptions: sparkles (five white starbursts) and inverse_sparkles (the image seen through one).

A starburst has ``rays`` rays with random lengths around a radius. At a pixel at distance ``dist`` and
angle ``theta`` from its centre, ``d = (theta + pi) / (2 pi) * rays`` picks rays ``i = int(d)`` and
``i + 1`` (mod ``rays``) and ``f = d - i``; the ray length ``L`` is interpolated between them, and the
starburst's weight is ``clip((1 - (f - 1/2)^2) (L^2 / (dist^2 + 1e-4))^((100 - amount) / 50), 0, 1)``.
"""

from __future__ import annotations

import numpy as np

from moo_compress.data.corruptions_bar.base import Params, register
from moo_compress.data.corruptions_bar.params import IMAGE_SIZE, scaled

__all__ = ["MAX_RAYS", "SPARKLES", "starburst_weight"]

WHITE = 255.0
MAX_RAYS = 199  # rays ~ U{50 .. 199}
SPARKLES = 5
_RANDOMNESS = 25 / 100.0  # ray lengths vary by 25 % of the radius


def starburst_weight(center: np.ndarray, lengths: np.ndarray, rays: np.ndarray, exponent: float) -> np.ndarray:
    """The weight of one starburst per image at every pixel.

    Args:
        center: ``(N, 2)`` centres ``[y, x]``.
        lengths: ``(N, MAX_RAYS)`` ray lengths; the first ``rays[n]`` of row ``n`` are used.
        rays: ``(N,)`` number of rays.
        exponent: ``(100 - amount) / 50``.

    Returns:
        ``(N, 32, 32)`` weights in [0, 1].
    """
    y, x = np.mgrid[0:IMAGE_SIZE, 0:IMAGE_SIZE]
    dy, dx = y - center[:, 0, None, None], x - center[:, 1, None, None]
    dist = np.sqrt(dy * dy + dx * dx)
    rays = rays[:, None, None]
    d = (np.arctan2(dx, dy) + np.pi) / (2 * np.pi) * rays
    i = d.astype(np.int64)
    f = d - i
    flat = lengths.reshape(len(lengths), -1)
    here = np.take_along_axis(flat, (i % rays).reshape(len(flat), -1), axis=1).reshape(d.shape)
    there = np.take_along_axis(flat, ((i + 1) % rays).reshape(len(flat), -1), axis=1).reshape(d.shape)
    length = here + f * (there - here)
    g = (length ** 2 / (dist ** 2 + 1e-4)) ** exponent
    return np.clip((1 - (f - 0.5) ** 2) * g, 0, 1)


def _sample_sparkles(rng: np.random.Generator, count: int, level: float) -> Params:
    return {
        "centers": rng.uniform(0, IMAGE_SIZE, size=(count, SPARKLES, 2)),
        "rays": rng.integers(50, 200, size=(count, SPARKLES)),
        "normals": rng.standard_normal(size=(count, SPARKLES, MAX_RAYS)),
    }


def _sparkles(images: np.ndarray, params: Params, level: float) -> np.ndarray:
    """Five white starbursts (amount 50) of radius ``.32 level`` px, drawn one over the other.

    Ray lengths are ``max(1, r + .25 r z)``. Between starbursts the image is rounded to float32, as the
    reference reads each pixel back with ``.astype(np.float32)``.
    """
    radius = scaled(level, 0.1) * IMAGE_SIZE
    lengths = np.maximum(1, radius + _RANDOMNESS * radius * params["normals"])
    out = images.astype(np.float64)
    for k in range(SPARKLES):
        weight = starburst_weight(params["centers"][:, k], lengths[:, k], params["rays"][:, k], 1.0)
        out = out.astype(np.float32).astype(np.float64)
        out = out + weight[..., None] * (WHITE - out)
    return out


def _sample_inverse(rng: np.random.Generator, count: int, level: float) -> Params:
    return {
        "center": rng.uniform(0.25, 0.75, size=(count, 2)) * IMAGE_SIZE,
        "rays": rng.integers(50, 200, size=count),
        "normals": rng.standard_normal(size=(count, MAX_RAYS)),
    }


def _inverse_sparkles(images: np.ndarray, params: Params, level: float) -> np.ndarray:
    """White everywhere except through one starburst of radius 8 (ray lengths ``8 + 2 z``).

    The amount ``100 - 6.5 level`` falls with severity, so the starburst's weight falls off faster.
    """
    radius = 0.25 * IMAGE_SIZE
    lengths = radius + _RANDOMNESS * radius * params["normals"]
    exponent = (100 - (100 - scaled(level, 65))) / 50.0
    weight = starburst_weight(params["center"], lengths, params["rays"], exponent)
    return WHITE + weight[..., None] * (images - WHITE)


register("sparkles", sample=_sample_sparkles, apply=_sparkles)
register("inverse_sparkles", sample=_sample_inverse, apply=_inverse_sparkles)
