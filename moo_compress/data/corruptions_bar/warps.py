"""Warps: pinch_and_twirl (a swirl in each cell of a 3x3 grid) and ripple (a sine displacement).

Each output pixel ``[y, x]`` reads the input at a warped point by bilinear interpolation with zeros
outside the image (the reference's ``bilinear_interpolation``).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from moo_compress.data.corruptions_bar.base import Params, register
from moo_compress.data.corruptions_bar.params import IMAGE_SIZE, scaled

__all__ = ["CELLS", "bilinear", "twirl_sources"]

CELLS = 3  # per axis, for 32x32 images (the reference uses 5 at 224x224)


def bilinear(images: np.ndarray, py: np.ndarray, px: np.ndarray) -> np.ndarray:
    """Samples every image at ``(py, px)`` (arrays broadcasting to ``(N, H, W)``), zero outside.

    The weights are written as the reference writes them (``1 - p + floor(p)`` and ``1 - (floor(p) +
    1) + p``), so results agree to the last bit.
    """
    count, height, width = images.shape[:3]
    py, px = np.broadcast_arrays(py, px, np.empty((count, 1, 1)))[:2]
    top, left = np.floor(py).astype(np.int64), np.floor(px).astype(np.int64)
    bottom, right = top + 1, left + 1
    flat = images.reshape(count, height * width, -1).astype(np.float64)

    def at(rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        inside = (rows >= 0) & (rows < height) & (cols >= 0) & (cols < width)
        index = np.where(inside, rows * width + cols, 0).reshape(count, -1, 1)
        values = np.take_along_axis(flat, index, axis=1).reshape(*rows.shape, -1)
        return values * inside[..., None]

    w_left, w_right = (1.0 - px + left)[..., None], (1.0 - right + px)[..., None]
    upper = at(top, left) * w_left + at(top, right) * w_right
    lower = at(bottom, left) * w_left + at(bottom, right) * w_right
    return upper * (1.0 - py + top)[..., None] + lower * (1.0 - bottom + py)[..., None]


@lru_cache(maxsize=16)
def twirl_sources(angle: float, amount: float) -> tuple[np.ndarray, np.ndarray]:
    """Where each pixel reads from when every cell twirls by ``angle`` (rows then columns, ``(32, 32)``).

    In a cell of side ``g = 32 // 3`` centred at ``c``, a pixel at distance ``dist <= g / 2`` (and not
    at the centre) reads from ``c + R(angle (1 - d)^2) (p - c) sin(pi d / 2)^-amount``, ``d = dist /
    (g / 2)``. The other pixels, and the rows and columns past the last full cell, read themselves.
    Sources stay inside their cell's disk, so the reference's cell-by-cell, in-place evaluation reads
    only untouched pixels and equals this one-pass gather.
    """
    grid = IMAGE_SIZE // CELLS
    radius = grid / 2
    y, x = np.mgrid[0:IMAGE_SIZE, 0:IMAGE_SIZE].astype(np.float64)
    sy, sx = y.copy(), x.copy()
    for row in range(CELLS):
        for col in range(CELLS):
            cy, cx = row * grid + radius, col * grid + radius
            cell = (slice(row * grid, (row + 1) * grid), slice(col * grid, (col + 1) * grid))
            dy, dx = y[cell] - cy, x[cell] - cx
            dist = np.sqrt(dy * dy + dx * dx)
            moved = ~(dist > radius) & (np.round(dist, 3) != 0.0)
            d = dist / radius
            with np.errstate(divide="ignore", invalid="ignore"):  # the centre, which stays in place
                t = np.sin(np.pi * 0.5 * d) ** (-amount)
                dy, dx = dy * t, dx * t
            a = angle * (1 - d) ** 2
            sy[cell] = np.where(moved, cy + (dy * np.cos(a) - dx * np.sin(a)), y[cell])
            sx[cell] = np.where(moved, cx + (dy * np.sin(a) + dx * np.cos(a)), x[cell])
    sy.setflags(write=False)
    sx.setflags(write=False)
    return sy, sx


def _sample_pinch(rng: np.random.Generator, count: int, level: float) -> Params:
    # One twirl direction per cell, [image, cell row, cell column].
    return {"signs": rng.choice(np.array([1, -1]), size=(count, CELLS, CELLS))}


def _pinch_and_twirl(images: np.ndarray, params: Params, level: float) -> np.ndarray:
    """Twirls each of the 3x3 cells by ``+-level pi / 20`` rad and pinches it by ``.04 level + .1``.

    The result is rounded to float32 before truncation, as the reference stores it in a float32 image.
    """
    angle, amount = scaled(level, np.pi / 2), scaled(level, 0.4) + 0.1
    grid = IMAGE_SIZE // CELLS
    plus, minus = twirl_sources(angle, amount), twirl_sources(-angle, amount)
    # Each pixel's cell; the rows and columns past the last full cell count as the last one (both maps
    # leave them in place).
    cell = np.minimum(np.arange(IMAGE_SIZE) // grid, CELLS - 1)
    positive = params["signs"][:, cell[:, None], cell[None, :]] > 0
    py = np.where(positive, plus[0], minus[0])
    px = np.where(positive, plus[1], minus[1])
    return bilinear(images, py, px).astype(np.float32)


def _sample_ripple(rng: np.random.Generator, count: int, level: float) -> Params:
    # Per image [rows, columns].
    return {"wavelengths": rng.uniform(0.1, 0.3, size=(count, 2)) * IMAGE_SIZE,
            "phases": rng.uniform(0, 2 * np.pi, size=(count, 2))}


def _ripple(images: np.ndarray, params: Params, level: float) -> np.ndarray:
    """Reads ``p + a sin(2 pi p / wavelength + phase)`` per axis, amplitude ``a = .08 level`` px."""
    amplitude = scaled(level, 0.025) * IMAGE_SIZE
    p = np.arange(IMAGE_SIZE)
    wavelength, phase = params["wavelengths"][:, :, None], params["phases"][:, :, None]
    shifted = p + amplitude * np.sin(2 * np.pi * p / wavelength + phase)  # (N, 2, 32)
    return bilinear(images, shifted[:, 0, :, None], shifted[:, 1, None, :])


register("pinch_and_twirl", sample=_sample_pinch, apply=_pinch_and_twirl)
register("ripple", sample=_sample_ripple, apply=_ripple)
