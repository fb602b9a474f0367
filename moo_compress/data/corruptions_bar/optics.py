"""Lens-like corruptions: circular_motion_blur and transverse_chromatic_abberation.

circular_motion_blur averages 21 copies of the image rotated about its centre by ``scipy.ndimage.rotate``
(cubic spline, zeros outside). Rotation is linear, so the average is one fixed ``(1024, 1024)`` matrix per
severity, built once and applied to every channel of every image with one matrix product.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy import ndimage, special

from moo_compress.data.corruptions_bar.base import Params, no_parameters, register
from moo_compress.data.corruptions_bar.params import IMAGE_SIZE, scaled

__all__ = ["ROTATIONS", "rotation_interpolation", "circular_blur_operator"]

ROTATIONS = 21
_PIXELS = IMAGE_SIZE * IMAGE_SIZE
# Impulses this far apart never share the 4x4 support of a cubic spline sample.
_IMPULSE_STEP = 4


def rotation_interpolation(angle: float) -> np.ndarray:
    """``(1024, 1024)`` matrix of the interpolation step of ``ndimage.rotate(plane, angle, reshape=False)``.

    ``rotate`` (order 3, mode ``constant``) prefilters the plane into spline coefficients, then samples
    them at rotated points; this is the sampling step, read off ``ndimage.affine_transform`` with the
    rotation ``rotate`` uses. A lattice of unit impulses 4 apart goes through it twice, once with
    weight 1 and once with each impulse weighted by its number: the ratio of the two outputs names the
    single impulse each output pixel saw. Sixteen lattices cover every input pixel.
    """
    cos, sin = special.cosdg(angle), special.sindg(angle)
    matrix = np.array([[cos, sin], [-sin, cos]])
    centre = np.full(2, (IMAGE_SIZE - 1) / 2)
    offset = centre - matrix @ centre
    pixel = np.arange(_PIXELS).reshape(IMAGE_SIZE, IMAGE_SIZE)
    operator = np.zeros((_PIXELS, _PIXELS))
    for row in range(_IMPULSE_STEP):
        for col in range(_IMPULSE_STEP):
            sources = pixel[row::_IMPULSE_STEP, col::_IMPULSE_STEP].ravel()
            ones, numbered = np.zeros(_PIXELS), np.zeros(_PIXELS)
            ones[sources] = 1
            numbered[sources] = np.arange(1, sources.size + 1)
            weight, tagged = (
                ndimage.affine_transform(plane.reshape(IMAGE_SIZE, IMAGE_SIZE), matrix, offset, order=3,
                                         mode="constant", cval=0.0, prefilter=False).ravel()
                for plane in (ones, numbered))
            seen = np.flatnonzero(weight)
            which = np.rint(tagged[seen] / weight[seen]).astype(np.int64) - 1
            operator[seen, sources[which]] = weight[seen]
    return operator


@lru_cache(maxsize=5)
def circular_blur_operator(amount: float) -> np.ndarray:
    """``(1024, 1024)`` matrix taking a flattened plane to its circular motion blur over ``+-amount`` deg.

    The average of ``rotate`` by ``t * amount`` for ``t`` in ``linspace(-1, 1, 21)`` with weights
    ``exp(-2 t^2)``; each rotation is the spline prefilter (``spline_filter1d`` along both axes, as
    ``rotate`` applies it) followed by :func:`rotation_interpolation`.
    """
    prefilter_1d = ndimage.spline_filter1d(np.eye(IMAGE_SIZE), order=3, axis=0, mode="constant")
    total = np.zeros((_PIXELS, _PIXELS))
    weights = 0.0
    for i in range(ROTATIONS):
        t = 2 * i / (ROTATIONS - 1) - 1
        weight = np.exp(-2 * t ** 2)
        total += weight * rotation_interpolation(t * amount)
        weights += weight
    operator = (total / weights) @ np.kron(prefilter_1d, prefilter_1d)
    operator.setflags(write=False)
    return operator


def _circular_motion_blur(images: np.ndarray, params: Params, level: float) -> np.ndarray:
    """Weighted average of 21 rotations over ``+-1.5 level`` degrees.

    Computed in float64 (the reference averages float32 rotations); the result is nudged by 1e-6 before
    truncation so that a value that is exactly an integer (a flat region) is not truncated one level
    down by rounding in the last bit.
    """
    operator = circular_blur_operator(scaled(level, 15))
    count = len(images)
    planes = np.moveaxis(images, -1, 1).reshape(count * 3, _PIXELS).astype(np.float64)
    blurred = (planes @ operator.T).reshape(count, 3, IMAGE_SIZE, IMAGE_SIZE)
    return np.moveaxis(blurred, 1, -1) + 1e-6


def _sample_chromatic(rng: np.random.Generator, count: int, level: float) -> Params:
    # Which channel gets which of the three zooms: a random permutation per image.
    return {"order": rng.permuted(np.tile(np.arange(3), (count, 1)), axis=1)}


def _transverse_chromatic_abberation(images: np.ndarray, params: Params, level: float) -> np.ndarray:
    """Zooms each channel about the centre by 1, ``1 + s / 2`` or ``1 + s`` (``s = .05 level``) and crops.

    Each channel goes through ``scipy.ndimage.zoom(channel, z, prefilter=False)`` (cubic spline without
    its prefilter, so every channel is also slightly smoothed; uint8 in and out) and the central 32x32 of
    the result is kept. The channels are zoomed one by one: a stacked call would smooth across them.
    """
    scale = scaled(level, 0.5)
    zooms = np.array([1.0, 1.0 + scale / 2, 1.0 + scale])[params["order"]]
    out = np.empty_like(images)
    for n, image in enumerate(images):
        for channel in range(3):
            zoomed = ndimage.zoom(image[:, :, channel], zooms[n, channel], prefilter=False)
            edge = (zoomed.shape[0] - IMAGE_SIZE) // 2
            out[n, :, :, channel] = zoomed[edge: edge + IMAGE_SIZE, edge: edge + IMAGE_SIZE]
    return out


register("circular_motion_blur", sample=no_parameters, apply=_circular_motion_blur)
register("transverse_chromatic_abberation", sample=_sample_chromatic, apply=_transverse_chromatic_abberation)
