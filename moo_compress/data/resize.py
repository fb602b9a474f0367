"""Bringing images to a model's input size.

Two cases, as the model's own configuration says:

- **Small images of one size** (CIFAR's 32 pixels for a 224-pixel model) are upsampled *whole*
  (:func:`resize_images`: bilinear, no crop, as in the study this tool grows from), after their
  corruptions, which are defined at the data's own resolution; images already at the input size are
  left untouched.
- **Natural-resolution images** (of several sizes, or larger than the input) get the evaluation
  transform of timm and torchvision (:class:`Sizing`): the shorter side resized to
  ``floor(size / crop_pct)``, then a centre crop of ``size``, with the model's interpolation. This happens
  once, when the folder is decoded into the cache.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from moo_compress.errors import ConfigError

__all__ = ["DEFAULT_CROP_PCT", "INTERPOLATIONS", "Sizing", "resize_images"]

#: timm's and torchvision's ImageNet evaluation crop (224 of 256), for models that name none.
DEFAULT_CROP_PCT = 0.875
#: Interpolations a model's configuration may name, as PIL filters.
INTERPOLATIONS: dict[str, Image.Resampling] = {
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "nearest": Image.Resampling.NEAREST,
    "lanczos": Image.Resampling.LANCZOS,
}


@dataclass(frozen=True)
class Sizing:
    """How natural-resolution images are brought to a model's input (timm's evaluation transform).

    Attributes:
        size: (height, width) of the model's input.
        crop_pct: Fraction of the resized image kept by the centre crop (timm's ``crop_pct``;
            torchvision's ``crop_size / resize_size``).
        interpolation: ``bilinear``, ``bicubic``, ``nearest`` or ``lanczos``.
    """

    size: tuple[int, int]
    crop_pct: float = DEFAULT_CROP_PCT
    interpolation: str = "bilinear"

    def __post_init__(self) -> None:
        object.__setattr__(self, "size", tuple(int(v) for v in self.size))
        if len(self.size) != 2 or min(self.size) < 1:
            raise ConfigError(f"an input size is (height, width) in pixels, got {self.size!r}")
        if not 0 < float(self.crop_pct) <= 1:
            raise ConfigError(f"crop_pct must be in (0, 1], got {self.crop_pct!r}")
        object.__setattr__(self, "crop_pct", float(self.crop_pct))
        if self.interpolation not in INTERPOLATIONS:
            raise ConfigError(f"unknown interpolation {self.interpolation!r} (valid: {', '.join(INTERPOLATIONS)})")

    def to_dict(self) -> dict[str, Any]:
        """JSON form (a cache-key ingredient)."""
        return {"size": list(self.size), "crop_pct": self.crop_pct, "interpolation": self.interpolation}

    def keeps(self, sizes: set[tuple[int, int]]) -> bool:
        """Whether images of these (width, height) sizes are kept as they are here: one size, no larger
        than the input (upsampled whole later, after their corruptions)."""
        if len(sizes) != 1:
            return False
        width, height = next(iter(sizes))
        return height <= self.size[0] and width <= self.size[1]

    def fit(self, image: Image.Image) -> np.ndarray:
        """``image`` as uint8 (height, width, 3) of :attr:`size`: shorter side to ``floor(min(size) /
        crop_pct)``, aspect kept, then the centre crop (rounded as torchvision's ``CenterCrop``)."""
        height, width = self.size
        image = image.convert("RGB")
        if image.size == (width, height):
            return np.asarray(image)
        scale = math.floor(min(height, width) / self.crop_pct)
        w, h = image.size
        new = (scale, max(scale, int(scale * h / w))) if w <= h else (max(scale, int(scale * w / h)), scale)
        if new != image.size:
            image = image.resize(new, INTERPOLATIONS[self.interpolation])
        left, top = int(round((new[0] - width) / 2.0)), int(round((new[1] - height) / 2.0))
        return np.asarray(image.crop((left, top, left + width, top + height)))


def resize_images(images: np.ndarray, size: tuple[int, int], *, chunk: int = 256) -> np.ndarray:
    """``images`` (uint8 N, H, W, 3) resized to ``size`` = (height, width); the same array when it already is.

    Bilinear with antialiasing (which matters only when shrinking), rounded back to uint8, in chunks so
    that a large set never needs more than ``chunk`` float images at once.
    """
    if tuple(images.shape[1:3]) == tuple(size):
        return images
    out = np.empty((len(images), size[0], size[1], 3), dtype=np.uint8)
    for start in range(0, len(images), chunk):
        x = torch.from_numpy(np.array(images[start:start + chunk], dtype=np.uint8)).permute(0, 3, 1, 2).float()
        y = F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False, antialias=True)
        out[start:start + chunk] = y.round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
    return out
