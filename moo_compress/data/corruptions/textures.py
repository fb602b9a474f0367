"""Frost textures: the six images shipped by the ``imagecorruptions`` package (Apache-2.0).

``imagecorruptions`` is found with ``importlib.util.find_spec`` and never imported: importing it needs
``pkg_resources``, which recent setuptools no longer provides. Only its ``frost/`` folder is read.
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

import cv2
import numpy as np

from moo_compress.errors import DataNotFoundError

__all__ = ["FROST_FILES", "frost_dir", "frost_textures"]

# The reference draws from the first five (np.random.randint(5)); frost6 is never used.
FROST_FILES: tuple[str, ...] = ("frost1.png", "frost2.png", "frost3.png", "frost4.jpg", "frost5.jpg", "frost6.jpg")


def frost_dir() -> Path:
    """The ``frost`` folder of the installed ``imagecorruptions`` package.

    Raises:
        DataNotFoundError: if the package or its textures are missing.
    """
    spec = importlib.util.find_spec("imagecorruptions")
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        folder = Path(location) / "frost"
        if all((folder / name).is_file() for name in FROST_FILES[:5]):
            return folder
    raise DataNotFoundError(
        "the frost corruption needs the frost textures of the 'imagecorruptions' package; "
        "install it with: python -m pip install imagecorruptions"
    )


@functools.lru_cache(maxsize=8)
def _originals() -> tuple[np.ndarray, ...]:
    folder = frost_dir()
    textures = []
    for name in FROST_FILES[:5]:
        image = cv2.imread(str(folder / name))
        if image is None:
            raise DataNotFoundError(f"cannot read frost texture {folder / name}; reinstall imagecorruptions")
        image.setflags(write=False)
        textures.append(image)
    return tuple(textures)


@functools.lru_cache(maxsize=16)
def frost_textures(scale: float = 0.2, height: int = 32, width: int = 32) -> tuple[np.ndarray, ...]:
    """The first five textures as the reference reads them: OpenCV BGR, resized by ``scale`` (bilinear;
    not resized at 1), each larger than ``height`` x ``width`` so that a window of that size can be cropped.

    A texture that ``scale`` would leave no larger than the window (a 320-pixel image with the ImageNet-C
    scale of 1) is instead resized to 1.1 times the smallest size holding the window, bicubic, the rule
    of the ``imagecorruptions`` package. Returned read-only; the reference crops the window and only then
    flips BGR to RGB.
    """
    textures = []
    for image in _originals():
        if scale != 1:
            image = cv2.resize(image, (0, 0), fx=scale, fy=scale)
        if image.shape[0] <= height or image.shape[1] <= width:
            original = _originals()[len(textures)]
            factor = 1.1 * max(height / original.shape[0], width / original.shape[1])
            size = (int(np.ceil(original.shape[1] * factor)), int(np.ceil(original.shape[0] * factor)))
            image = cv2.resize(original, size, interpolation=cv2.INTER_CUBIC)
        image.setflags(write=False)
        textures.append(image)
    return tuple(textures)
