"""Noise corruptions: gaussian, shot (Poisson), impulse (salt and pepper) and speckle noise.

Each hook draws one array of noise for the whole batch; values are in [0, 1] until the final ``* 255``.
Arithmetic is done in place where the reference's result is the same (a + b = b + a in floating point):
a 224-pixel batch is tens of megabytes, and every temporary array costs a pass through memory.
"""

from __future__ import annotations

import numpy as np

from moo_compress.data.corruptions.base import register, to_255

__all__ = ["gaussian_noise", "shot_noise", "impulse_noise", "speckle_noise"]


@register("gaussian_noise")
def gaussian_noise(images: np.ndarray, c: float, rng: np.random.Generator) -> np.ndarray:
    """``x + N(0, c)`` per pixel and channel."""
    noisy = rng.normal(scale=c, size=images.shape)
    noisy += images / 255.0
    return to_255(noisy)


@register("shot_noise")
def shot_noise(images: np.ndarray, c: float, rng: np.random.Generator) -> np.ndarray:
    """``Poisson(x c) / c``: photon noise with ``c`` photons at full intensity."""
    x = images / 255.0
    x *= c
    counts = rng.poisson(x)
    return to_255(np.divide(counts, c, out=x))


@register("impulse_noise")
def impulse_noise(images: np.ndarray, c: float, rng: np.random.Generator) -> np.ndarray:
    """Salt and pepper as ``skimage.util.random_noise(mode='s&p', amount=c)``.

    Each value (pixel and channel) is flipped with probability ``c``, to 1 or 0 with equal odds.
    """
    x = images / 255.0
    flipped = rng.random(x.shape) < c
    salted = rng.random(x.shape) < 0.5
    x[flipped & salted] = 1.0
    x[flipped & ~salted] = 0.0
    return to_255(x)


@register("speckle_noise")
def speckle_noise(images: np.ndarray, c: float, rng: np.random.Generator) -> np.ndarray:
    """``x + x N(0, c)``: multiplicative noise."""
    x = images / 255.0
    noisy = rng.normal(scale=c, size=x.shape)
    noisy *= x
    noisy += x
    return to_255(noisy)
