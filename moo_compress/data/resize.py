"""Bringing images to a model's input size: whole images, bilinear, no crop (CIFAR upsampled to 224 as
in the study this tool grows from; 32-pixel images for a 32-pixel model are left untouched)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["resize_images"]


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
