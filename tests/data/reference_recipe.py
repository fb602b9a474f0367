"""The recipe of make_tinyimagenet_c.py / make_imagenet_c.py restated one image at a time, with the library
calls it names (scikit-image, OpenCV, SciPy, Pillow), as an independent judge of the vectorised code.

Each function takes one uint8 ``(H, W, 3)`` image, the parameter of one severity as the recipe writes it
and a ``np.random.RandomState`` (the recipe draws from NumPy's global generator), and returns the
uint8 image the recipe would save (``np.uint8`` of its float result). The two ImageMagick calls
(motion_blur, and the blur inside snow) use the ``imagecorruptions`` package's NumPy port of
ImageMagick's motion blur, the closest reference available without ImageMagick.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import cv2
import numpy as np
import skimage
from PIL import Image
from scipy import ndimage

from tests.data.synthetic import import_imagecorruptions

__all__ = ["REFERENCE", "reference_corrupt"]

Reference = Callable[..., np.ndarray]
REFERENCE: dict[str, Reference] = {}


def _recipe(function: Reference) -> Reference:
    REFERENCE[function.__name__] = function
    return function


def reference_corrupt(name: str, image: np.ndarray, c: Any, rs: np.random.RandomState, *,
                      frost_scale: float) -> np.ndarray:
    """The recipe's saved image for one corruption: ``np.uint8`` of the float result (truncation)."""
    kwargs = {"frost_scale": frost_scale} if name == "frost" else {}
    return np.uint8(np.clip(REFERENCE[name](image, c, rs, **kwargs), 0, 255))


def _unit(image: np.ndarray) -> np.ndarray:
    return np.asarray(image, dtype=np.float64) / 255.0


def _blur(x: np.ndarray, sigma: float) -> np.ndarray:
    return skimage.filters.gaussian(x, sigma=sigma, channel_axis=-1)


def _zoom_centre(x: np.ndarray, factor: float) -> np.ndarray:
    """scipy's linear zoom of the centre crop, trimmed back to the image's size about the centre."""
    height, width = x.shape[:2]
    crop_h, crop_w = int(np.ceil(height / factor)), int(np.ceil(width / factor))
    top, left = (height - crop_h) // 2, (width - crop_w) // 2
    zoomed = ndimage.zoom(x[top:top + crop_h, left:left + crop_w], (factor, factor) + (1,) * (x.ndim - 2), order=1)
    trim_h, trim_w = (zoomed.shape[0] - height) // 2, (zoomed.shape[1] - width) // 2
    return zoomed[trim_h:trim_h + height, trim_w:trim_w + width]


def _magick_motion_blur(layer: np.ndarray, radius: float, sigma: float, angle: float) -> np.ndarray:
    """ImageMagick's motion blur of a uint8 image, rounded back to 8 bits as its PNG output is."""
    blur = import_imagecorruptions().corruptions._motion_blur
    return np.uint8(np.clip(np.round(blur(layer.astype(np.float64), radius, sigma, angle)), 0, 255))


@_recipe
def gaussian_noise(image: np.ndarray, c: float, rs: np.random.RandomState) -> np.ndarray:
    x = _unit(image)
    return np.clip(x + rs.normal(size=x.shape, scale=c), 0, 1) * 255


@_recipe
def shot_noise(image: np.ndarray, c: float, rs: np.random.RandomState) -> np.ndarray:
    return np.clip(rs.poisson(_unit(image) * c) / c, 0, 1) * 255


@_recipe
def impulse_noise(image: np.ndarray, c: float, rs: np.random.RandomState) -> np.ndarray:
    x = skimage.util.random_noise(_unit(image), mode="s&p", amount=c, rng=int(rs.randint(2**31)))
    return np.clip(x, 0, 1) * 255


@_recipe
def speckle_noise(image: np.ndarray, c: float, rs: np.random.RandomState) -> np.ndarray:
    x = _unit(image)
    return np.clip(x + x * rs.normal(size=x.shape, scale=c), 0, 1) * 255


@_recipe
def gaussian_blur(image: np.ndarray, c: float, rs: np.random.RandomState) -> np.ndarray:
    return np.clip(_blur(_unit(image), c), 0, 1) * 255


@_recipe
def glass_blur(image: np.ndarray, c: tuple[float, int, int], rs: np.random.RandomState) -> np.ndarray:
    sigma, delta, iterations = c
    x = np.uint8(_blur(_unit(image), sigma) * 255)
    height, width = x.shape[:2]
    for _ in range(iterations):
        for h in range(height - delta, delta, -1):
            for w in range(width - delta, delta, -1):
                dx, dy = rs.randint(-delta, delta, size=(2,))
                x[h, w], x[h + dy, w + dx] = x[h + dy, w + dx], x[h, w]  # views: a copy, as the recipe's
    return np.clip(_blur(x / 255.0, sigma), 0, 1) * 255


def disk(radius: float, alias_blur: float) -> np.ndarray:
    span = np.arange(-8, 9) if radius <= 8 else np.arange(-radius, radius + 1)
    xs, ys = np.meshgrid(span, span)
    kernel = ((xs**2 + ys**2) <= radius**2).astype(np.float32)
    kernel /= kernel.sum()
    return cv2.GaussianBlur(kernel, ksize=(3, 3) if radius <= 8 else (5, 5), sigmaX=alias_blur)


@_recipe
def defocus_blur(image: np.ndarray, c: tuple[float, float], rs: np.random.RandomState) -> np.ndarray:
    x = _unit(image)
    kernel = disk(*c)
    return np.clip(np.stack([cv2.filter2D(x[..., d], -1, kernel) for d in range(3)], axis=-1), 0, 1) * 255


@_recipe
def motion_blur(image: np.ndarray, c: tuple[float, float], rs: np.random.RandomState) -> np.ndarray:
    return _magick_motion_blur(image, c[0], c[1], rs.uniform(-45, 45)).astype(np.float64)


@_recipe
def zoom_blur(image: np.ndarray, c: tuple[float, float, float], rs: np.random.RandomState) -> np.ndarray:
    x = _unit(image).astype(np.float32)
    factors = np.arange(*c)
    total = np.zeros_like(x)
    for factor in factors:
        total += _zoom_centre(x, factor)
    return np.clip((x + total) / (len(factors) + 1), 0, 1) * 255


@_recipe
def snow(image: np.ndarray, c: tuple[float, ...], rs: np.random.RandomState) -> np.ndarray:
    loc, scale, zoom, threshold, radius, sigma, blend = c
    x = np.asarray(image, dtype=np.float32) / 255.0
    layer = _zoom_centre(rs.normal(size=x.shape[:2], loc=loc, scale=scale), zoom)
    layer[layer < threshold] = 0
    layer = (np.clip(layer, 0, 1) * 255).astype(np.uint8)
    layer = _magick_motion_blur(layer, radius, sigma, rs.uniform(-135, -45)) / 255.0
    layer = layer[..., None]
    grey = cv2.cvtColor(x, cv2.COLOR_RGB2GRAY)[..., None]
    x = blend * x + (1 - blend) * np.maximum(x, grey * 1.5 + 0.5)
    return np.clip(x + layer + np.rot90(layer, k=2), 0, 1) * 255


@_recipe
def frost(image: np.ndarray, c: tuple[float, float], rs: np.random.RandomState, *, frost_scale: float) -> np.ndarray:
    from moo_compress.data.corruptions.textures import FROST_FILES, frost_dir

    texture = cv2.imread(str(frost_dir() / FROST_FILES[rs.randint(5)]))
    if frost_scale != 1:
        texture = cv2.resize(texture, (0, 0), fx=frost_scale, fy=frost_scale)
    height, width = image.shape[:2]
    top, left = rs.randint(0, texture.shape[0] - height), rs.randint(0, texture.shape[1] - width)
    crop = texture[top:top + height, left:left + width][..., [2, 1, 0]]
    return np.clip(c[0] * np.asarray(image, dtype=np.float64) + c[1] * crop, 0, 255)


def plasma_fractal(mapsize: int, decay: float, rs: np.random.RandomState) -> np.ndarray:
    """Diamond-square on a periodic grid, in the recipe's order of random draws."""
    grid = np.zeros((mapsize, mapsize))
    step, wibble = mapsize, 100.0
    while step >= 2:
        half = step // 2
        corners = grid[0::step, 0::step]
        total = corners + np.roll(corners, -1, axis=0)
        total = total + np.roll(total, -1, axis=1)
        grid[half::step, half::step] = total / 4 + wibble * rs.uniform(-wibble, wibble, total.shape)
        centres, corners = grid[half::step, half::step], grid[0::step, 0::step]
        total = centres + np.roll(centres, 1, axis=0) + corners + np.roll(corners, -1, axis=1)
        grid[0::step, half::step] = total / 4 + wibble * rs.uniform(-wibble, wibble, total.shape)
        total = centres + np.roll(centres, 1, axis=1) + corners + np.roll(corners, -1, axis=0)
        grid[half::step, 0::step] = total / 4 + wibble * rs.uniform(-wibble, wibble, total.shape)
        step //= 2
        wibble /= decay
    grid -= grid.min()
    return grid / grid.max()


@_recipe
def fog(image: np.ndarray, c: tuple[float, float], rs: np.random.RandomState) -> np.ndarray:
    x = _unit(image)
    peak = x.max()
    height, width = x.shape[:2]
    mapsize = 1 << (max(height, width) - 1).bit_length()
    x = x + c[0] * plasma_fractal(mapsize, c[1], rs)[:height, :width, None]
    return np.clip(x * peak / (peak + c[0]), 0, 1) * 255


@_recipe
def brightness(image: np.ndarray, c: float, rs: np.random.RandomState) -> np.ndarray:
    hsv = skimage.color.rgb2hsv(_unit(image))
    hsv[..., 2] = np.clip(hsv[..., 2] + c, 0, 1)
    return np.clip(skimage.color.hsv2rgb(hsv), 0, 1) * 255


@_recipe
def saturate(image: np.ndarray, c: tuple[float, float], rs: np.random.RandomState) -> np.ndarray:
    hsv = skimage.color.rgb2hsv(_unit(image))
    hsv[..., 1] = np.clip(hsv[..., 1] * c[0] + c[1], 0, 1)
    return np.clip(skimage.color.hsv2rgb(hsv), 0, 1) * 255


@_recipe
def contrast(image: np.ndarray, c: float, rs: np.random.RandomState) -> np.ndarray:
    x = _unit(image)
    means = x.mean(axis=(0, 1), keepdims=True)
    return np.clip((x - means) * c + means, 0, 1) * 255


@_recipe
def elastic_transform(image: np.ndarray, c: tuple[float, float, float], rs: np.random.RandomState) -> np.ndarray:
    alpha, sigma, jitter = c
    x = np.asarray(image, dtype=np.float32) / 255.0
    height, width = x.shape[:2]
    centre, reach = np.float32([height // 2, width // 2]), min(height, width) // 3
    points = np.float32([centre + reach, [centre[0] + reach, centre[1] - reach], centre - reach])
    moved = points + rs.uniform(-jitter, jitter, size=points.shape).astype(np.float32)
    x = cv2.warpAffine(x, cv2.getAffineTransform(points, moved), (width, height), borderMode=cv2.BORDER_REFLECT_101)
    fields = [skimage.filters.gaussian(rs.uniform(-1, 1, size=(height, width)), sigma, mode="reflect", truncate=3)
              * alpha for _ in range(2)]
    dx, dy = (f.astype(np.float32)[..., None] for f in fields)
    cols, rows, chans = np.meshgrid(np.arange(width), np.arange(height), np.arange(3))
    coords = (np.reshape(rows + dy, (-1, 1)), np.reshape(cols + dx, (-1, 1)), np.reshape(chans, (-1, 1)))
    return np.clip(ndimage.map_coordinates(x, coords, order=1, mode="reflect").reshape(x.shape), 0, 1) * 255


@_recipe
def pixelate(image: np.ndarray, c: float, rs: np.random.RandomState) -> np.ndarray:
    height, width = image.shape[:2]
    small = Image.fromarray(image).resize((int(width * c), int(height * c)), Image.BOX)
    return np.asarray(small.resize((width, height), Image.BOX), dtype=np.float64)


@_recipe
def jpeg_compression(image: np.ndarray, c: int, rs: np.random.RandomState) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, "JPEG", quality=c)
    return np.asarray(Image.open(buffer), dtype=np.float64)


@_recipe
def spatter(image: np.ndarray, c: tuple[float, ...], rs: np.random.RandomState) -> np.ndarray:
    loc, scale, sigma, threshold, intensity, mode = c
    x = np.asarray(image, dtype=np.float32) / 255.0
    liquid = skimage.filters.gaussian(rs.normal(size=x.shape[:2], loc=loc, scale=scale), sigma=sigma)
    liquid[liquid < threshold] = 0
    if mode == 0:
        liquid = (liquid * 255).astype(np.uint8)
        dist = cv2.distanceTransform(255 - cv2.Canny(liquid, 50, 150), cv2.DIST_L2, 5)
        _, dist = cv2.threshold(dist, 20, 20, cv2.THRESH_TRUNC)
        dist = cv2.equalizeHist(cv2.blur(dist, (3, 3)).astype(np.uint8))
        dist = cv2.filter2D(dist, cv2.CV_8U, np.array([[-2, -1, 0], [-1, 1, 1], [0, 1, 2]]))
        mask = liquid * cv2.blur(dist, (3, 3)).astype(np.float32)
        if mask.max() > 0:
            mask = mask / mask.max() * intensity
        water = np.array([175, 238, 238], np.float32) / 255.0
        return np.clip(x + mask[..., None] * water, 0, 1) * 255
    mud = skimage.filters.gaussian(np.where(liquid > threshold, 1.0, 0.0).astype(np.float32), sigma=intensity)
    mud[mud < 0.8] = 0
    brown = np.array([63, 42, 20], np.float64) / 255.0
    return np.clip(x * (1 - mud[..., None]) + brown * mud[..., None], 0, 1) * 255
