"""Digital corruptions: contrast, elastic transform, pixelate, JPEG, and the extra saturate.

pixelate and jpeg_compression call Pillow image by image, so that they equal the reference (which
is defined by Pillow's resampling and codec) bit for bit; everything else is vectorised.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from moo_compress.data.corruptions import color, filters, geometry
from moo_compress.data.corruptions.base import register, to_255

__all__ = ["contrast", "elastic_transform", "pixelate", "jpeg_compression", "saturate"]


@register("contrast")
def contrast(images: np.ndarray, c: float, rng: np.random.Generator) -> np.ndarray:
    """``(x - mean) c + mean``, with the mean of each channel over the image."""
    x = images / 255.0
    means = np.mean(x, axis=(1, 2), keepdims=True)
    x -= means
    x *= c
    x += means
    return to_255(x)


def _affine_points(height: int, width: int) -> np.ndarray:
    """The reference's three control points, ``centre +- min(height, width) // 3``, given to OpenCV as
    (x, y) pairs with the centre as ``(height // 2, width // 2)``, as the reference writes them (for a
    square image the order does not matter). CIFAR: ``[[26, 26], [26, 6], [6, 6]]``."""
    centre_0, centre_1, reach = height // 2, width // 2, min(height, width) // 3
    return np.float32([[centre_0 + reach, centre_1 + reach], [centre_0 + reach, centre_1 - reach],
                       [centre_0 - reach, centre_1 - reach]])


def _random_affine_sources(count: int, height: int, width: int, jitter: float,
                           rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Source coordinates ``(rows, cols)`` of ``cv2.warpAffine`` for the affine maps moving the control
    points by ``U(-jitter, jitter)`` (``cv2.getAffineTransform``), one map per image."""
    points = _affine_points(height, width)
    moved = points + rng.uniform(-jitter, jitter, size=(count, 3, 2)).astype(np.float32)
    src = np.concatenate([points, np.ones((3, 1), np.float32)], axis=1).astype(np.float64)
    forward = np.linalg.solve(src, moved.astype(np.float64)).transpose(0, 2, 1)  # (count, 2, 3): dst = M [x y 1]
    linear_inv = np.linalg.inv(forward[:, :, :2])
    offset_inv = -np.einsum("nij,nj->ni", linear_inv, forward[:, :, 2])
    ys, xs = np.meshgrid(np.arange(height, dtype=np.float64), np.arange(width, dtype=np.float64), indexing="ij")
    cols = linear_inv[:, 0, 0, None, None] * xs + linear_inv[:, 0, 1, None, None] * ys + offset_inv[:, 0, None, None]
    rows = linear_inv[:, 1, 0, None, None] * xs + linear_inv[:, 1, 1, None, None] * ys + offset_inv[:, 1, None, None]
    return rows, cols


@register("elastic_transform")
def elastic_transform(images: np.ndarray, c: tuple[float, float, float], rng: np.random.Generator) -> np.ndarray:
    """A random affine warp, then a smooth random displacement field; both bilinear.

    As the reference: the affine warp samples with OpenCV's BORDER_REFLECT_101 and the displacement
    (uniform noise smoothed by a Gaussian of ``sigma``, ``mode='reflect'``, ``truncate=3``, times
    ``alpha``) samples like ``scipy.ndimage.map_coordinates(order=1, mode='reflect')``. Deviation: the
    warp uses exact coordinates where ``cv2.warpAffine`` rounds them to 1/32 pixel.
    """
    alpha, sigma, jitter = c
    count, height, width = images.shape[:3]
    x = images.astype(np.float32) / 255.0
    rows, cols = _random_affine_sources(count, height, width, jitter, rng)
    x = geometry.sample_bilinear(x, rows, cols, border="reflect101")
    size = (count, height, width)
    dx = (filters.gaussian(rng.uniform(-1, 1, size=size), sigma, mode="reflect", truncate=3) * alpha)
    dy = (filters.gaussian(rng.uniform(-1, 1, size=size), sigma, mode="reflect", truncate=3) * alpha)
    grid_rows, grid_cols = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    x = geometry.sample_bilinear(x, grid_rows + dy.astype(np.float32), grid_cols + dx.astype(np.float32),
                                 border="reflect")
    return np.clip(x, 0, 1) * 255


@register("pixelate")
def pixelate(images: np.ndarray, c: float, rng: np.random.Generator) -> np.ndarray:
    """Pillow BOX resize to ``int(W c)`` x ``int(H c)`` pixels and back to ``W`` x ``H``."""
    height, width = images.shape[1:3]
    small = (int(width * c), int(height * c))
    out = np.empty_like(images)
    for index, image in enumerate(images):
        resized = Image.fromarray(image).resize(small, Image.BOX).resize((width, height), Image.BOX)
        out[index] = np.asarray(resized)
    return out


@register("jpeg_compression")
def jpeg_compression(images: np.ndarray, c: int, rng: np.random.Generator) -> np.ndarray:
    """Pillow JPEG encoding at quality ``c`` and decoding."""
    out = np.empty_like(images)
    for index, image in enumerate(images):
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, "JPEG", quality=c)
        buffer.seek(0)
        with Image.open(buffer) as decoded:
            out[index] = np.asarray(decoded.convert("RGB"))
    return out


@register("saturate")
def saturate(images: np.ndarray, c: tuple[float, float], rng: np.random.Generator) -> np.ndarray:
    """``S = clip(S a + b)`` in HSV."""
    a, b = c
    hsv = color.rgb_to_hsv(images / 255.0)
    hsv[..., 1] = np.clip(hsv[..., 1] * a + b, 0, 1)
    return np.clip(color.hsv_to_rgb(hsv), 0, 1) * 255
