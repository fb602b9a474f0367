"""Colour conversions of float RGB batches in [0, 1], formula for formula as scikit-image / OpenCV."""

from __future__ import annotations

import numpy as np

__all__ = ["rgb_to_hsv", "hsv_to_rgb", "rgb_to_gray"]


def rgb_to_hsv(rgb: np.ndarray) -> np.ndarray:
    """``skimage.color.rgb2hsv`` for any ``(..., 3)`` float array (hue in [0, 1))."""
    value = rgb.max(-1)
    delta = np.ptp(rgb, axis=-1)
    grey = delta == 0.0
    safe_delta = np.where(grey, 1.0, delta)
    saturation = np.where(grey, 0.0, delta / np.where(value == 0.0, 1.0, value))
    red, green, blue = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    # skimage assigns red, then green, then blue where each is the max: the last assignment wins
    hue = np.where(red == value, (green - blue) / safe_delta, 0.0)
    hue = np.where(green == value, 2.0 + (blue - red) / safe_delta, hue)
    hue = np.where(blue == value, 4.0 + (red - green) / safe_delta, hue)
    hue = (hue / 6.0) % 1.0
    hue[grey] = 0.0
    return np.stack([hue, saturation, value], axis=-1)


def hsv_to_rgb(hsv: np.ndarray) -> np.ndarray:
    """``skimage.color.hsv2rgb`` for any ``(..., 3)`` float array."""
    hue, saturation, value = hsv[..., 0], hsv[..., 1], hsv[..., 2]
    sector = np.floor(hue * 6)
    f = hue * 6 - sector
    p = value * (1 - saturation)
    q = value * (1 - f * saturation)
    t = value * (1 - (1 - f) * saturation)
    sector = sector.astype(np.uint8) % 6
    choices = np.stack([
        np.stack((value, t, p), axis=-1),
        np.stack((q, value, p), axis=-1),
        np.stack((p, value, t), axis=-1),
        np.stack((p, q, value), axis=-1),
        np.stack((t, p, value), axis=-1),
        np.stack((value, p, q), axis=-1),
    ])
    index = np.broadcast_to(sector[..., None], hsv.shape)
    return np.take_along_axis(choices, index[None], axis=0)[0]


def rgb_to_gray(rgb: np.ndarray) -> np.ndarray:
    """``cv2.cvtColor(x, COLOR_RGB2GRAY)`` of a float batch: ``.299 R + .587 G + .114 B``, keeps the last axis."""
    weights = np.array([0.299, 0.587, 0.114], dtype=rgb.dtype)
    return (rgb @ weights)[..., None]
