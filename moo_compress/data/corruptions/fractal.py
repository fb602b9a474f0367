"""The plasma fractal (diamond-square) behind fog, vectorised over a batch of independent maps."""

from __future__ import annotations

import numpy as np

__all__ = ["plasma_fractal"]


def plasma_fractal(count: int, rng: np.random.Generator, *, mapsize: int = 32, wibble_decay: float = 3.0) -> np.ndarray:
    """``count`` independent ``(mapsize, mapsize)`` height maps in [0, 1], as the reference's ``plasma_fractal``.

    The diamond-square steps are those of the reference (including its ``wibble * U(-wibble, wibble)``
    perturbation and periodic ``np.roll`` neighbours); each step fills every map of the batch at once.
    """
    if mapsize & (mapsize - 1):
        raise ValueError(f"mapsize must be a power of two, got {mapsize}")
    maps = np.zeros((count, mapsize, mapsize), dtype=np.float64)
    step = mapsize
    wibble = 100.0

    def wibbled_mean(total: np.ndarray) -> np.ndarray:
        return total / 4 + wibble * rng.uniform(-wibble, wibble, total.shape)

    while step >= 2:
        half = step // 2
        # squares: centre of every square of corners ``step`` apart
        corners = maps[:, 0:mapsize:step, 0:mapsize:step]
        square = corners + np.roll(corners, shift=-1, axis=1)
        square += np.roll(square, shift=-1, axis=2)
        maps[:, half:mapsize:step, half:mapsize:step] = wibbled_mean(square)
        # diamonds: midpoints of the edges
        centres = maps[:, half:mapsize:step, half:mapsize:step]
        corners = maps[:, 0:mapsize:step, 0:mapsize:step]
        left = (centres + np.roll(centres, 1, axis=1)) + (corners + np.roll(corners, -1, axis=2))
        maps[:, 0:mapsize:step, half:mapsize:step] = wibbled_mean(left)
        top = (centres + np.roll(centres, 1, axis=2)) + (corners + np.roll(corners, -1, axis=1))
        maps[:, half:mapsize:step, 0:mapsize:step] = wibbled_mean(top)
        step //= 2
        wibble /= wibble_decay
    maps -= maps.min(axis=(1, 2), keepdims=True)
    return maps / maps.max(axis=(1, 2), keepdims=True)
