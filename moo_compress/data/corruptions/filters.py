"""Batched image filters that reproduce the scikit-image / OpenCV calls of the reference recipe.

Every function works on a batch ``(N, H, W)`` or ``(N, H, W, C)`` and filters each image (and channel)
independently, in one vectorised call.
"""

from __future__ import annotations

import cv2
import numpy as np
from scipy import ndimage

__all__ = ["gaussian", "disk_kernel", "correlate_reflect101"]


def gaussian(images: np.ndarray, sigma: float, *, mode: str = "nearest", truncate: float = 4.0) -> np.ndarray:
    """``skimage.filters.gaussian`` of every image (channels separately): blurs the H and W axes only.

    The defaults (``mode='nearest'``, ``truncate=4``) are scikit-image's, as used by the reference.
    A ``sigma`` of 0 returns a copy, as scipy does.
    """
    sigmas = [0.0, float(sigma), float(sigma)] + [0.0] * (images.ndim - 3)
    return ndimage.gaussian_filter(images, sigmas, mode=mode, truncate=truncate)


def disk_kernel(radius: float, alias_blur: float) -> np.ndarray:
    """The reference's anti-aliased disk: a normalised disk on a 17x17 grid, Gaussian-blurred by OpenCV."""
    if radius <= 8:
        coords = np.arange(-8, 8 + 1)
        ksize = (3, 3)
    else:
        coords = np.arange(-radius, radius + 1)
        ksize = (5, 5)
    xs, ys = np.meshgrid(coords, coords)
    disk = np.array((xs**2 + ys**2) <= radius**2, dtype=np.float32)
    disk /= np.sum(disk)
    return cv2.GaussianBlur(disk, ksize=ksize, sigmaX=alias_blur)


def correlate_reflect101(images: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """``cv2.filter2D`` of every image and channel (correlation, centred anchor, BORDER_REFLECT_101).

    The kernel is cropped to the smallest centred square holding its non-zero weights, and the result is
    a weighted sum of shifted views of the padded batch, so the cost is one pass per non-zero tap.
    """
    kernel = np.asarray(kernel, dtype=np.float64)
    centre = kernel.shape[0] // 2
    rows, cols = np.nonzero(kernel)
    reach = int(max(np.abs(rows - centre).max(), np.abs(cols - centre).max())) if rows.size else 0
    kernel = kernel[centre - reach: centre + reach + 1, centre - reach: centre + reach + 1]
    height, width = images.shape[1:3]
    pad = [(0, 0), (reach, reach), (reach, reach)] + [(0, 0)] * (images.ndim - 3)
    padded = np.pad(images.astype(np.float64, copy=False), pad, mode="reflect")  # numpy reflect == REFLECT_101
    out = np.zeros(images.shape, dtype=np.float64)
    for dy, dx in zip(*np.nonzero(kernel)):
        out += kernel[dy, dx] * padded[:, dy: dy + height, dx: dx + width]
    return out
