"""Batched image filters that reproduce the scikit-image / OpenCV calls of the reference recipe.

Every function works on a batch ``(N, H, W)`` or ``(N, H, W, C)`` and filters each image (and channel)
independently, in one vectorised call (or, for kernels too large to sum tap by tap, one OpenCV call per image).
"""

from __future__ import annotations

import functools

import cv2
import numpy as np
import torch
from scipy import ndimage

__all__ = ["gaussian", "gaussian_matrix", "disk_kernel", "correlate_reflect101"]

# Gaussian kernels reaching further than this many pixels are applied as a matrix along each axis: the
# ImageNet-C elastic_transform smooths with sigma up to 171 pixels (a 1,025-tap kernel on 224 pixels).
_MATRIX_REACH = 32
# Correlation kernels with more non-zero taps than this are left to OpenCV (the reference's own call).
_MAX_TAPS = 49


def gaussian(images: np.ndarray, sigma: float, *, mode: str = "nearest", truncate: float = 4.0) -> np.ndarray:
    """``skimage.filters.gaussian`` of every image (channels separately): blurs the H and W axes only.

    The defaults (``mode='nearest'``, ``truncate=4``) are scikit-image's, as used by the reference.
    A ``sigma`` of 0 returns a copy, as scipy does. A kernel reaching beyond 32 pixels is applied as
    the equivalent matrix (:func:`gaussian_matrix`), which equals scipy's result up to rounding.
    """
    if int(truncate * float(sigma) + 0.5) <= _MATRIX_REACH:
        sigmas = [0.0, float(sigma), float(sigma)] + [0.0] * (images.ndim - 3)
        return ndimage.gaussian_filter(images, sigmas, mode=mode, truncate=truncate)
    x = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float64))
    if images.ndim == 4:
        x = x.permute(0, 3, 1, 2)  # (N, C, H, W) view
    rows = torch.tensor(gaussian_matrix(images.shape[1], float(sigma), mode, float(truncate)))  # (a copy:
    cols = torch.tensor(gaussian_matrix(images.shape[2], float(sigma), mode, float(truncate)))  # read-only)
    out = torch.matmul(torch.matmul(rows, x), cols.T)
    if images.ndim == 4:
        out = out.permute(0, 2, 3, 1)
    return np.ascontiguousarray(out.numpy())


@functools.lru_cache(maxsize=64)
def gaussian_matrix(size: int, sigma: float, mode: str, truncate: float) -> np.ndarray:
    """The ``(size, size)`` matrix of ``scipy.ndimage.gaussian_filter1d`` along one axis of ``size`` pixels.

    Column ``j`` is the filter applied to the ``j``-th unit vector, so it holds the kernel folded back
    by the border mode exactly as scipy folds it, however far the kernel reaches past the image.
    """
    matrix = ndimage.gaussian_filter1d(np.eye(size), sigma, axis=0, mode=mode, truncate=truncate)
    matrix.setflags(write=False)
    return matrix


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
    a weighted sum of shifted views of the padded batch, so the cost is one pass per non-zero tap. Kernels
    of more than 49 taps (the ImageNet-C disks) go to ``cv2.filter2D`` itself, one call per image.
    """
    if np.count_nonzero(kernel) > _MAX_TAPS:
        batch = np.asarray(images, dtype=np.float64)
        out = np.empty(batch.shape, dtype=np.float64)
        for index, image in enumerate(batch):
            out[index] = cv2.filter2D(image, -1, kernel, borderType=cv2.BORDER_REFLECT_101).reshape(image.shape)
        return out
    kernel = np.asarray(kernel, dtype=np.float64)
    centre = kernel.shape[0] // 2
    rows, cols = np.nonzero(kernel)
    reach = int(max(np.abs(rows - centre).max(), np.abs(cols - centre).max())) if rows.size else 0
    kernel = kernel[centre - reach: centre + reach + 1, centre - reach: centre + reach + 1]
    height, width = images.shape[1:3]
    pad = [(0, 0), (reach, reach), (reach, reach)] + [(0, 0)] * (images.ndim - 3)
    padded = np.pad(images.astype(np.float64, copy=False), pad, mode="reflect")  # numpy reflect == REFLECT_101
    out = np.zeros(images.shape, dtype=np.float64)
    for dy, dx in zip(*np.nonzero(kernel), strict=True):
        out += kernel[dy, dx] * padded[:, dy: dy + height, dx: dx + width]
    return out
