"""Noise corruptions: gaussian, shot (Poisson), impulse (salt and pepper) and speckle noise.

Each hook draws one array of noise for the whole batch; values are in [0, 1] until the final ``* 255``.
"""

from __future__ import annotations

import numpy as np

from moo_compress.data.corruptions.base import register

__all__ = ["gaussian_noise", "shot_noise", "impulse_noise", "speckle_noise"]


@register("gaussian_noise")
def gaussian_noise(images: np.ndarray, c: float, rng: np.random.Generator) -> np.ndarray:
    """``x + N(0, c)`` per pixel and channel."""
    x = images / 255.0
    return np.clip(x + rng.normal(scale=c, size=x.shape), 0, 1) * 255


@register("shot_noise")
def shot_noise(images: np.ndarray, c: float, rng: np.random.Generator) -> np.ndarray:
    """``Poisson(x c) / c``: photon noise with ``c`` photons at full intensity."""
    x = images / 255.0
    return np.clip(rng.poisson(x * c) / c, 0, 1) * 255


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
    return np.clip(x, 0, 1) * 255


@register("speckle_noise")
def speckle_noise(images: np.ndarray, c: float, rng: np.random.Generator) -> np.ndarray:
    """``x + x N(0, c)``: multiplicative noise."""
    x = images / 255.0
    return np.clip(x + x * rng.normal(scale=c, size=x.shape), 0, 1) * 255
