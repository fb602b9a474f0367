"""Natural-looking test images made on the fly (there are no ImageNet images here), and the
``imagecorruptions`` package imported with the shims it needs on current NumPy / scikit-image."""

from __future__ import annotations

import importlib.util
import os
import sys
import types
import warnings

import numpy as np
from scipy import ndimage

__all__ = ["natural_images", "import_imagecorruptions"]


def natural_images(count: int, size: int | tuple[int, int], seed: int = 0) -> np.ndarray:
    """uint8 ``(count, H, W, 3)`` photographs in miniature: smooth colour fields at three scales (a 1/f-like
    spectrum), a few sharp discs and boxes (edges for blurs, JPEG and pixelate to bite on), and grain."""
    rng = np.random.default_rng(seed)
    height, width = (size, size) if isinstance(size, int) else size
    field = np.zeros((count, height, width, 3))
    for scale, weight in ((height / 4, 1.0), (height / 12, 0.5), (height / 40, 0.25)):
        layer = ndimage.gaussian_filter(rng.normal(size=field.shape), sigma=(0, scale, scale, 0), mode="wrap")
        field += weight * layer / layer.std(axis=(1, 2, 3), keepdims=True)
    low = field.min(axis=(1, 2, 3), keepdims=True)
    images = 20 + 200 * (field - low) / (field.max(axis=(1, 2, 3), keepdims=True) - low)
    ys, xs = np.mgrid[0:height, 0:width]
    for image in images:
        for _ in range(3):
            cy, cx = rng.uniform(0, height), rng.uniform(0, width)
            reach = rng.uniform(0.05, 0.2) * min(height, width)
            if rng.random() < 0.5:
                mask = (ys - cy) ** 2 + (xs - cx) ** 2 < reach**2
            else:
                mask = (np.abs(ys - cy) < reach) & (np.abs(xs - cx) < 0.6 * reach)
            image[mask] = rng.uniform(0, 255, size=3)
    images += rng.normal(scale=4, size=images.shape)
    return np.clip(images, 0, 255).astype(np.uint8)


def import_imagecorruptions() -> types.ModuleType:
    """Imports ``imagecorruptions`` 1.1.2 with three in-process shims (nothing installed is changed).

    - a stand-in ``pkg_resources`` module (removed from recent setuptools) whose ``resource_filename``
      points into the package folder, where its frost textures are;
    - ``numpy.float_`` as an alias of ``numpy.float64`` (removed in NumPy 2; its fog uses it);
    - its ``gaussian`` (scikit-image) wrapped to translate ``multichannel=True`` into ``channel_axis=-1``
      (the keyword was removed from scikit-image; its glass and gaussian blur use it).

    Raises:
        ImportError: if the package is not installed.
    """
    spec = importlib.util.find_spec("imagecorruptions")
    if spec is None:
        raise ImportError("imagecorruptions is not installed")
    root = list(spec.submodule_search_locations)[0]
    if "pkg_resources" not in sys.modules:
        shim = types.ModuleType("pkg_resources")
        shim.resource_filename = lambda package, resource: os.path.join(root, resource)  # type: ignore[attr-defined]
        sys.modules["pkg_resources"] = shim
    if not hasattr(np, "float_"):
        np.float_ = np.float64  # type: ignore[attr-defined]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import imagecorruptions
        from imagecorruptions import corruptions as module
    if not getattr(module.gaussian, "_shimmed", False):
        original = module.gaussian

        def gaussian(
            image: np.ndarray, *args: object, multichannel: bool | None = None, **kwargs: object
        ) -> np.ndarray:
            if multichannel:
                kwargs["channel_axis"] = -1
            return original(image, *args, **kwargs)

        gaussian._shimmed = True  # type: ignore[attr-defined]
        module.gaussian = gaussian
    return imagecorruptions
