"""Blur corruptions: defocus, glass, motion, zoom and gaussian blur."""

from __future__ import annotations

import numpy as np

from moo_compress.data.corruptions import filters, geometry, motion
from moo_compress.data.corruptions.base import register

__all__ = ["defocus_blur", "glass_blur", "motion_blur", "zoom_blur", "gaussian_blur", "shuffle_sources"]


@register("defocus_blur")
def defocus_blur(images: np.ndarray, c: tuple[float, float], rng: np.random.Generator) -> np.ndarray:
    """Correlation of each channel with an anti-aliased disk of radius ``c[0]`` (alias blur ``c[1]``)."""
    radius, alias_blur = c
    kernel = filters.disk_kernel(radius, alias_blur)
    return np.clip(filters.correlate_reflect101(images / 255.0, kernel), 0, 1) * 255


@register("glass_blur")
def glass_blur(images: np.ndarray, c: tuple[float, int, int], rng: np.random.Generator) -> np.ndarray:
    """Gaussian blur, local pixel shuffling, Gaussian blur again.

    The reference visits pixels ``(h, w)`` for ``h = H-delta .. delta+1`` and ``w = W-delta .. delta+1``
    (descending, rows outer) and "swaps" ``x[h, w]`` with ``x[h+dy, w+dx]``, ``dx, dy ~ U{-delta ..
    delta-1}``; because the swap assigns NumPy views, it copies the neighbour into ``(h, w)`` and leaves
    the neighbour as it was. :func:`shuffle_sources` turns that scan into one gather per pass.
    """
    sigma, delta, iterations = c
    x = (filters.gaussian(images / 255.0, sigma) * 255).astype(np.uint8)
    count, height, width = x.shape[:3]
    rows = np.arange(height - delta, delta, -1)
    cols = np.arange(width - delta, delta, -1)
    for _ in range(iterations):
        shift = rng.integers(-delta, delta, size=(2, count, rows.size, cols.size))
        sources = shuffle_sources(height, width, rows, cols, dy=shift[1], dx=shift[0])
        x = np.take_along_axis(x.reshape(count, height * width, -1), sources[..., None], axis=1).reshape(x.shape)
    return np.clip(filters.gaussian(x / 255.0, sigma), 0, 1) * 255


def shuffle_sources(height: int, width: int, rows: np.ndarray, cols: np.ndarray, *, dy: np.ndarray,
                    dx: np.ndarray) -> np.ndarray:
    """Where every pixel's value comes from after one pass of glass blur's sequential copy scan.

    Args:
        height, width: Image size.
        rows, cols: The visited rows and columns, in scan order (descending).
        dy, dx: ``(N, len(rows), len(cols))`` offsets of the neighbour each visited pixel copies.

    Returns:
        ``(N, height * width)`` flat source positions: the pass is ``x'[p] = x[sources[p]]``.

    A visited pixel copies its neighbour's *current* value. A neighbour not visited yet (up or left of
    it, or outside the scanned area) still holds its value from before the pass; a neighbour visited
    earlier (below, or right on the same row) already holds the value it copied, so the pixel's source
    is that neighbour's source. These links only point to earlier pixels, so following them by pointer
    jumping (each round doubles the distance followed) ends after a few rounds. With ``delta = 1`` (every
    CIFAR severity) no neighbour was visited earlier and the pass is a plain gather.
    """
    count = dy.shape[0]
    target = (rows[:, None] * width + cols[None, :]).reshape(-1)
    n_rows, n_cols = rows[:, None] + dy, cols[None, :] + dx
    scanned = (n_rows >= rows[-1]) & (n_rows <= rows[0]) & (n_cols >= cols[-1]) & (n_cols <= cols[0])
    earlier = scanned & ((dy > 0) | ((dy == 0) & (dx > 0)))
    sources = np.broadcast_to(np.arange(height * width), (count, height * width)).copy()
    sources[:, target] = (n_rows * width + n_cols).reshape(count, -1)
    linked = np.zeros((count, height * width), dtype=bool)
    linked[:, target] = earlier.reshape(count, -1)
    while linked.any():
        # a linked pixel takes over the source and the link of the pixel it copied
        hop_sources = np.take_along_axis(sources, sources, axis=1)
        hop_linked = np.take_along_axis(linked, sources, axis=1)
        sources = np.where(linked, hop_sources, sources)
        linked &= hop_linked
    return sources


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
