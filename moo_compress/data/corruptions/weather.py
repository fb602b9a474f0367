"""Weather corruptions: snow, frost, fog, brightness, and the extra spatter."""

from __future__ import annotations

import cv2
import numpy as np

from moo_compress.data.corruptions import color, filters, fractal, geometry, motion, textures
from moo_compress.data.corruptions.base import register, to_255

__all__ = ["snow", "frost", "fog", "brightness", "spatter"]


@register("snow")
def snow(images: np.ndarray, c: tuple[float, ...], rng: np.random.Generator) -> np.ndarray:
    """A thresholded, zoomed and motion-blurred noise layer added twice (once rotated by 180 degrees).

    The layer goes through 8-bit (truncated) before the motion blur, as the reference passes it to
    ImageMagick as a greyscale PNG; the image is first brightened towards ``1.5 gray + .5``.
    """
    loc, scale, zoom, threshold, radius, sigma, blend = c
    count, height, width = images.shape[:3]
    x = images.astype(np.float32) / 255.0
    layer = rng.normal(size=(count, height, width), loc=loc, scale=scale)
    layer = geometry.clipped_zoom(layer, zoom)
    layer[layer < threshold] = 0
    layer = (np.clip(layer, 0, 1) * 255).astype(np.uint8)
    angles = rng.uniform(-135, -45, size=count)
    layer = (motion.motion_blur(layer, radius, sigma, angles) / 255.0)[..., None]
    x = blend * x + (1 - blend) * np.maximum(x, color.rgb_to_gray(x) * 1.5 + 0.5)
    return np.clip(x + layer + layer[:, ::-1, ::-1], 0, 1) * 255


@register("frost")
def frost(images: np.ndarray, c: tuple[float, float, float], rng: np.random.Generator) -> np.ndarray:
    """``a x + b frost`` in 0..255 units, with a random crop of the image's size from one of the first
    five frost textures, resized by the set's factor ``c[2]`` (:func:`~.textures.frost_textures`)."""
    a, b, scale = c
    count, height, width = images.shape[:3]
    crops = np.empty(images.shape, dtype=np.uint8)
    which = rng.integers(5, size=count)
    for index, texture in enumerate(textures.frost_textures(scale, height, width)):
        members = np.flatnonzero(which == index)
        if members.size == 0:
            continue
        top = rng.integers(0, texture.shape[0] - height, size=members.size)
        left = rng.integers(0, texture.shape[1] - width, size=members.size)
        windows = np.lib.stride_tricks.sliding_window_view(texture, (height, width), axis=(0, 1))  # (H', W', 3, h, w)
        crops[members] = windows[top, left].transpose(0, 2, 3, 1)[..., ::-1]  # BGR -> RGB
    return np.clip(a * images + b * crops.astype(np.float64), 0, 255)


@register("fog")
def fog(images: np.ndarray, c: tuple[float, float], rng: np.random.Generator) -> np.ndarray:
    """Adds ``strength`` times a plasma fractal, then rescales by ``max / (max + strength)`` (max per image).

    The fractal is square, the next power of two of the longer side (32 for CIFAR, 256 for 224-pixel
    ImageNet images), normalised whole and cropped to the image from the top left, as the reference.
    """
    strength, decay = c
    count, height, width = images.shape[:3]
    mapsize = 1 << (max(height, width) - 1).bit_length()
    x = images / 255.0
    peak = x.max(axis=(1, 2, 3), keepdims=True)
    plasma = fractal.plasma_fractal(count, rng, mapsize=mapsize, wibble_decay=decay)[:, :height, :width]
    x += strength * plasma[..., None]
    x *= peak
    x /= peak + strength
    return to_255(x)


@register("brightness")
def brightness(images: np.ndarray, c: float, rng: np.random.Generator) -> np.ndarray:
    """Adds ``c`` to the HSV value channel (clipped to [0, 1])."""
    hsv = color.rgb_to_hsv(images / 255.0)
    hsv[..., 2] = np.clip(hsv[..., 2] + c, 0, 1)
    return np.clip(color.hsv_to_rgb(hsv), 0, 1) * 255


_WATER = np.array([175, 238, 238], dtype=np.float32) / 255.0  # pale turquoise
_MUD = np.array([63, 42, 20], dtype=np.float64) / 255.0  # brown
_EDGE_KERNEL = np.array([[-2, -1, 0], [-1, 1, 1], [0, 1, 2]], dtype=np.float32)


def _water_mask(layer: np.ndarray) -> np.ndarray:
    """The reference's per-image OpenCV pipeline (Canny, distance transform, equalisation...) for water.

    These are per-image OpenCV calls (C loops over pixels); only this short list runs per image.
    """
    dists = np.empty(layer.shape, dtype=np.float32)
    for index, image in enumerate(layer):
        dist = 255 - cv2.Canny(image, 50, 150)
        dist = cv2.distanceTransform(dist, cv2.DIST_L2, 5)
        _, dist = cv2.threshold(dist, 20, 20, cv2.THRESH_TRUNC)
        dist = cv2.blur(dist, (3, 3)).astype(np.uint8)
        dist = cv2.equalizeHist(dist)
        dist = cv2.filter2D(dist, cv2.CV_8U, _EDGE_KERNEL)
        dists[index] = cv2.blur(dist, (3, 3))
    return layer * dists


@register("spatter")
def spatter(images: np.ndarray, c: tuple[float, ...], rng: np.random.Generator) -> np.ndarray:
    """Water drops (mode 0) or mud (mode 1) from a thresholded, blurred noise layer.

    Deviation: where the reference would divide 0 by 0 (a water mask that is empty everywhere, which
    makes its result NaN), the image is left unchanged.
    """
    loc, scale, sigma, threshold, intensity, mode = c
    x = images.astype(np.float32) / 255.0
    layer = rng.normal(size=images.shape[:3], loc=loc, scale=scale)
    layer = filters.gaussian(layer, sigma)
    layer[layer < threshold] = 0
    if mode == 0:
        # the reference casts without clipping: C's float -> uint8 conversion wraps values above 255
        layer8 = (layer * 255).astype(np.int64).astype(np.uint8)
        mask = _water_mask(layer8)
        peak = mask.max(axis=(1, 2), keepdims=True)
        mask = np.divide(mask, peak, out=np.zeros_like(mask), where=peak > 0) * intensity
        return np.clip(x + mask[..., None] * _WATER, 0, 1) * 255
    mud = np.where(layer > threshold, 1.0, 0.0)
    mud = filters.gaussian(mud, intensity)
    mud[mud < 0.8] = 0
    mud = mud[..., None]
    return np.clip(x * (1 - mud) + _MUD * mud, 0, 1) * 255
