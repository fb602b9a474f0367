"""Resampling helpers: the reference's clipped zoom as a matrix, and batched bilinear warps.

``clipped_zoom`` in the reference crops the centre ``ceil(size / z)`` pixels, zooms them with
``scipy.ndimage.zoom(order=1)`` and trims the centre ``size`` pixels. Along one axis that is a fixed linear
map, so :func:`zoom_matrix` builds it once and a batch is zoomed with two matrix products.
"""

from __future__ import annotations

import functools

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["zoom_matrix", "clipped_zoom", "sample_bilinear"]


@functools.lru_cache(maxsize=256)
def zoom_matrix(size: int, zoom: float) -> np.ndarray:
    """The ``(size, size)`` matrix ``A`` with ``clipped_zoom(x)[i] = sum_j A[i, j] x[j]`` along one axis.

    It follows ``scipy.ndimage.zoom(order=1, grid_mode=False)``: output pixel ``o`` of the zoomed crop
    samples input coordinate ``o * (ch - 1) / (out - 1)`` by linear interpolation.
    """
    crop = int(np.ceil(size / zoom))
    top = (size - crop) // 2
    zoomed = int(round(crop * zoom))
    ratio = (crop - 1) / (zoomed - 1) if zoomed > 1 else 1.0
    trim = (zoomed - size) // 2
    coords = np.arange(trim, trim + size, dtype=np.float64) * ratio
    low = np.minimum(np.floor(coords).astype(np.int64), crop - 1)
    frac = coords - low
    high = np.minimum(low + 1, crop - 1)
    matrix = np.zeros((size, size), dtype=np.float64)
    rows = np.arange(size)
    np.add.at(matrix, (rows, top + low), 1.0 - frac)
    np.add.at(matrix, (rows, top + high), frac)
    matrix.setflags(write=False)
    return matrix


def clipped_zoom(images: np.ndarray, zoom: float) -> np.ndarray:
    """The reference ``clipped_zoom`` of every image of a float batch ``(N, H, W)`` or ``(N, H, W, C)``.

    Computed in the batch's float dtype (the reference zooms float32 images for zoom_blur and float64
    snow layers). Rows and columns are cropped, zoomed and trimmed each by their own length, so a
    non-square image is zoomed about its centre too.
    """
    height, width = images.shape[1:3]
    rows = torch.from_numpy(zoom_matrix(height, float(zoom)).astype(images.dtype))
    cols = rows if width == height else torch.from_numpy(zoom_matrix(width, float(zoom)).astype(images.dtype))
    x = torch.from_numpy(np.ascontiguousarray(images))
    if images.ndim == 4:
        x = x.permute(0, 3, 1, 2)  # (N, C, H, W) view
    out = torch.matmul(torch.matmul(rows, x), cols.T)
    if images.ndim == 4:
        out = out.permute(0, 2, 3, 1)
    return np.ascontiguousarray(out.numpy())


def sample_bilinear(images: np.ndarray, rows: np.ndarray, cols: np.ndarray, *, border: str) -> np.ndarray:
    """Bilinear samples ``images[n, rows[n, i, j], cols[n, i, j]]`` of every channel, in one batched call.

    Args:
        images: Float batch ``(N, H, W, C)``.
        rows: Sample row coordinates ``(N, H', W')`` in pixels.
        cols: Sample column coordinates ``(N, H', W')`` in pixels.
        border: ``reflect101`` (OpenCV BORDER_REFLECT_101: mirror about the edge pixel centres) or
            ``reflect`` (scipy's ``mode='reflect'``: mirror about the image edges).

    Returns:
        ``(N, H', W', C)`` samples, in the images' dtype.
    """
    height, width = images.shape[1:3]
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2)
    if border == "reflect101":  # align_corners=True: -1 and 1 are the centres of the edge pixels
        gx = 2.0 * cols / (width - 1) - 1.0
        gy = 2.0 * rows / (height - 1) - 1.0
        align = True
    elif border == "reflect":  # align_corners=False: -1 and 1 are the outer edges of the edge pixels
        gx = (2.0 * cols + 1.0) / width - 1.0
        gy = (2.0 * rows + 1.0) / height - 1.0
        align = False
    else:
        raise ValueError(f"unknown border {border!r}")
    grid = torch.from_numpy(np.stack([gx, gy], axis=-1).astype(images.dtype))
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=align)
    return np.ascontiguousarray(out.permute(0, 2, 3, 1).numpy())
