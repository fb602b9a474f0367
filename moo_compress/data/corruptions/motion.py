"""Motion blur with a one-sided line kernel, equivalent to ImageMagick's ``MotionBlurImage``.

The reference recipe calls ``MagickMotionBlurImage(radius, sigma, angle)`` through Wand. ImageMagick
builds a kernel of ``width = 2 ceil(radius) + 1`` Gaussian weights ``exp(-i^2 / (2 sigma^2))`` for
``i = 0 .. width-1`` (normalised to sum 1) and, for each output pixel ``(x, y)``, sums the weighted
input pixels at ``(x + ox_i, y + oy_i)`` with

    ox_i = ceil(i cos(angle) - 0.5),   oy_i = ceil(i sin(angle) - 0.5)

(angle in degrees, y pointing down), reading outside the image as the nearest edge pixel (ImageMagick's
default "edge" virtual pixels). The result is rounded to the nearest 8-bit value when the reference
writes it back to PNG. This module does the same for a batch in which every image has its own angle:
each tap adds one shifted view of the padded image (no copies), image by image.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["line_kernel", "line_offsets", "motion_blur"]


def line_kernel(radius: float, sigma: float) -> np.ndarray:
    """The ``width = 2 ceil(radius) + 1`` normalised one-sided Gaussian weights of ImageMagick."""
    width = int(2 * math.ceil(radius) + 1)
    taps = np.arange(width, dtype=np.float64)
    weights = np.exp(-(taps * taps) / (2.0 * sigma * sigma)) / (math.sqrt(2.0 * math.pi) * sigma)
    return weights / weights.sum()


def line_offsets(angles: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Integer offsets ``(ox, oy)``, each ``(N, width)``, of the kernel taps for every angle (degrees)."""
    radians = math.pi * np.asarray(angles, dtype=np.float64)[:, None] / 180.0
    point_x = width * np.sin(radians)
    point_y = width * np.cos(radians)
    length = np.hypot(point_x, point_y)
    taps = np.arange(width, dtype=np.float64)[None, :]
    ox = np.ceil(taps * point_y / length - 0.5).astype(np.int64)
    oy = np.ceil(taps * point_x / length - 0.5).astype(np.int64)
    return ox, oy


def motion_blur(images: np.ndarray, radius: float, sigma: float, angles: np.ndarray) -> np.ndarray:
    """Motion-blurs a uint8 batch ``(N, H, W)`` or ``(N, H, W, C)``, image ``n`` along ``angles[n]`` degrees.

    Returns:
        The blurred batch, uint8, rounded to nearest like ImageMagick's 8-bit output.
    """
    kernel = line_kernel(radius, sigma)
    width = kernel.size
    ox, oy = line_offsets(angles, width)
    height, cols = images.shape[1:3]
    pad = width - 1
    padding = [(0, 0), (pad, pad), (pad, pad)] + [(0, 0)] * (images.ndim - 3)
    padded = np.pad(images, padding, mode="edge")  # edge virtual pixels
    total = np.zeros(images.shape, dtype=np.float64)
    scratch = np.empty(images.shape[1:], dtype=np.float64)
    for n in range(len(images)):  # every image has its own angle: shifted views of it, added in place
        out = total[n]
        for tap in range(width):
            dx, dy = int(ox[n, tap]), int(oy[n, tap])
            np.multiply(padded[n, pad + dy: pad + dy + height, pad + dx: pad + dx + cols], kernel[tap], out=scratch)
            out += scratch
    return np.clip(np.floor(total + 0.5), 0, 255).astype(np.uint8)
