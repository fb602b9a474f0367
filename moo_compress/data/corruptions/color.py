"""Colour conversions of float RGB batches in [0, 1], formula for formula as scikit-image / OpenCV.

The work is done on contiguous channel planes (a strided ``rgb[..., k]`` is several times slower).
"""

from __future__ import annotations

import numpy as np

__all__ = ["rgb_to_hsv", "hsv_to_rgb", "rgb_to_gray"]


def rgb_to_hsv(rgb: np.ndarray) -> np.ndarray:
    """``skimage.color.rgb2hsv`` for any ``(..., 3)`` float array (hue in [0, 1))."""
    red, green, blue = np.moveaxis(rgb, -1, 0).copy()
    value = np.maximum(np.maximum(red, green), blue)
    delta = value - np.minimum(np.minimum(red, green), blue)
    grey = delta == 0.0
    safe_delta = np.where(grey, 1.0, delta)
    saturation = np.where(grey, 0.0, delta / np.where(value == 0.0, 1.0, value))
    # skimage assigns the red, then the green, then the blue formula where that channel is the max:
    # the last assignment wins on ties
    hue = (green - blue) / safe_delta
    np.copyto(hue, 2.0 + (blue - red) / safe_delta, where=green == value)
    np.copyto(hue, 4.0 + (red - green) / safe_delta, where=blue == value)
    hue = (hue / 6.0) % 1.0
    hue[grey] = 0.0
    return np.stack([hue, saturation, value], axis=-1)


def hsv_to_rgb(hsv: np.ndarray) -> np.ndarray:
    """``skimage.color.hsv2rgb`` for any ``(..., 3)`` float array."""
    hue, saturation, value = np.moveaxis(hsv, -1, 0).copy()
    sector = np.floor(hue * 6)
    f = hue * 6 - sector
    p = value * (1 - saturation)
    q = value * (1 - f * saturation)
    t = value * (1 - (1 - f) * saturation)
    sector = sector.astype(np.uint8) % 6
    red = np.choose(sector, (value, q, p, p, t, value))
    green = np.choose(sector, (t, value, value, q, p, p))
    blue = np.choose(sector, (p, p, t, value, value, q))
    return np.stack([red, green, blue], axis=-1)


def rgb_to_gray(rgb: np.ndarray) -> np.ndarray:
    """``cv2.cvtColor(x, COLOR_RGB2GRAY)`` of a float batch: ``.299 R + .587 G + .114 B``, keeps the last axis."""
    weights = np.array([0.299, 0.587, 0.114], dtype=rgb.dtype)
    return (rgb @ weights)[..., None]
