"""Blur corruptions: defocus, glass, motion, zoom and gaussian blur."""

from __future__ import annotations

import numpy as np

from moo_compress.data.corruptions import filters, geometry, motion
from moo_compress.data.corruptions.base import register

__all__ = ["defocus_blur", "glass_blur", "motion_blur", "zoom_blur", "gaussian_blur"]


@register("defocus_blur")
def defocus_blur(images: np.ndarray, c: tuple[float, float], rng: np.random.Generator) -> np.ndarray:
    """Correlation of each channel with an anti-aliased disk of radius ``c[0]`` (alias blur ``c[1]``)."""
    radius, alias_blur = c
    kernel = filters.disk_kernel(radius, alias_blur)
    return np.clip(filters.correlate_reflect101(images / 255.0, kernel), 0, 1) * 255


@register("glass_blur")
def glass_blur(images: np.ndarray, c: tuple[float, int, int], rng: np.random.Generator) -> np.ndarray:
    """Gaussian blur, local pixel shuffling, Gaussian blur again.

    The reference visits pixels ``(h, w)`` for ``h, w = 31-delta .. delta+1`` (descending, rows outer)
    and "swaps" ``x[h, w]`` with ``x[h+dy, w+dx]``, ``dx, dy ~ U{-delta .. delta-1}``; because the swap
    assigns NumPy views, it copies the neighbour into ``(h, w)`` and leaves the neighbour as it was.
    With ``delta = 1`` (every CIFAR severity) the neighbour is up and/or left of ``(h, w)``, which the
    descending scan reaches only later, so every copy reads a value from before the pass: a pass is
    exactly the gather ``x'[h, w] = x[h+dy, w+dx]`` done here for all pixels and images at once. (For
    ``delta > 1`` a neighbour can lie below or right and the gather would differ from the scan; no
    CIFAR parameter does that.)
    """
    sigma, delta, iterations = c
    x = (filters.gaussian(images / 255.0, sigma) * 255).astype(np.uint8)
    count, size = x.shape[0], x.shape[1]
    visited = np.arange(size - delta, delta, -1)
    rows = visited[None, :, None]
    cols = visited[None, None, :]
    batch = np.arange(count)[:, None, None]
    for _ in range(iterations):
        shift = rng.integers(-delta, delta, size=(2, count, visited.size, visited.size))
        x[batch, rows, cols] = x[batch, rows + shift[1], cols + shift[0]]
    return np.clip(filters.gaussian(x / 255.0, sigma), 0, 1) * 255


@register("motion_blur")
def motion_blur(images: np.ndarray, c: tuple[float, float], rng: np.random.Generator) -> np.ndarray:
    """ImageMagick motion blur (radius ``c[0]``, sigma ``c[1]``) along an angle drawn from U[-45, 45] degrees."""
    radius, sigma = c
    angles = rng.uniform(-45, 45, size=len(images))
    return motion.motion_blur(images, radius, sigma, angles)


@register("zoom_blur")
def zoom_blur(images: np.ndarray, c: tuple[float, float, float], rng: np.random.Generator) -> np.ndarray:
    """Mean of the image and its centre zooms by every factor of ``np.arange(*c)`` (float32, as the reference)."""
    factors = np.arange(*c)
    x = (images / 255.0).astype(np.float32)
    total = np.zeros_like(x)
    for factor in factors:
        total += geometry.clipped_zoom(x, factor)
    x = (x + total) / (len(factors) + 1)
    return np.clip(x, 0, 1) * 255


@register("gaussian_blur")
def gaussian_blur(images: np.ndarray, c: float, rng: np.random.Generator) -> np.ndarray:
    """Gaussian blur of each channel with sigma ``c`` (scikit-image defaults: nearest border, truncate 4)."""
    return np.clip(filters.gaussian(images / 255.0, c), 0, 1) * 255
