"""The public entry point: validate the input, then draw and apply a corruption block by block.

Randomness follows the CIFAR-C generator's scheme (:func:`moo_compress.data.corruptions.base.block_rng`):
one stream per (seed, corruption, severity, block of :data:`BLOCK_SIZE` images), so a batch is corrupted
identically whether it is processed at once or in chunks that start on a block boundary.
"""

from __future__ import annotations

import numpy as np

from moo_compress.data.corruptions import BLOCK_SIZE, check_severity
from moo_compress.data.corruptions.api import check_corruption_images
from moo_compress.data.corruptions.base import block_rng, blocks, check_seed
from moo_compress.data.corruptions_bar import noise, occlusion, optics, sparkles, warps
from moo_compress.data.corruptions_bar.base import IMPLEMENTATIONS, to_uint8
from moo_compress.data.corruptions_bar.params import BAR_CORRUPTIONS, IMAGE_SIZE, PARAMS
from moo_compress.errors import DataFormatError

__all__ = ["BLOCK_SIZE", "IMAGE_SHAPE", "corrupt_bar", "corrupt_bar_into", "list_bar_corruptions",
           "check_bar_images"]

IMAGE_SHAPE = (IMAGE_SIZE, IMAGE_SIZE, 3)
_REGISTERING_MODULES = (noise, occlusion, optics, sparkles, warps)  # imported for their register() calls


def list_bar_corruptions(pattern: str | None = None) -> list[str]:
    """The ten CIFAR-10-C-bar corruption names in the reference's order, or those matching a glob.

    Raises:
        UnknownNameError: for a pattern that matches nothing (the message lists every name).
    """
    if pattern is None or pattern == "all":
        return list(BAR_CORRUPTIONS)
    names = [n for n in BAR_CORRUPTIONS if n in IMPLEMENTATIONS.names(pattern)]
    if not names:
        IMPLEMENTATIONS.get(pattern)  # raises UnknownNameError with close matches
    return names


def check_bar_images(images: object) -> np.ndarray:
    """Raises DataFormatError unless ``images`` is a uint8 array of shape (N, 32, 32, 3)."""
    check_corruption_images(images)
    if images.shape[1:] != IMAGE_SHAPE:  # type: ignore[union-attr]
        raise DataFormatError(
            f"images must have shape (N, 32, 32, 3) (NHWC; CIFAR-10-C-bar is defined for 32x32 RGB); "
            f"got {images.shape}"  # type: ignore[union-attr]
        )
    return images  # type: ignore[return-value]


def corrupt_bar_into(out: np.ndarray, images: np.ndarray, name: str, severity: int, *, seed: int = 0,
                     first_block: int = 0) -> None:
    """Writes the corrupted ``images`` into ``out`` (same shape, uint8; e.g. a memory map), block by block.

    ``first_block`` is the block index of ``images[0]`` within a larger batch: a chunk that starts at
    image ``k * BLOCK_SIZE`` of a set, passed ``first_block=k``, gets exactly the images that
    :func:`corrupt_bar` of the whole set would give it.
    """
    corruption = IMPLEMENTATIONS.get(name)
    severity = check_severity(severity)
    seed = check_seed(seed)
    check_bar_images(images)
    if not isinstance(out, np.ndarray) or out.shape != images.shape or out.dtype != np.uint8:
        raise DataFormatError(f"out must be a uint8 array of shape {images.shape}, got "
                              f"{getattr(out, 'dtype', type(out).__name__)} {getattr(out, 'shape', '')}")
    level = PARAMS[name].level(severity)
    for block, start, stop in blocks(len(images), first_block, BLOCK_SIZE):
        batch = np.ascontiguousarray(images[start:stop])
        params = corruption.sample(block_rng(seed, name, severity, block), len(batch), level)
        out[start:stop] = to_uint8(corruption.apply(batch, params, level))


def corrupt_bar(images: np.ndarray, name: str, severity: int, *, seed: int = 0) -> np.ndarray:
    """Applies one CIFAR-10-C-bar corruption at one severity to a batch of images.

    Args:
        images: uint8 array ``(N, 32, 32, 3)`` (NHWC, RGB); a memory map is fine and is not modified.
        name: One of :func:`list_bar_corruptions` (``blue_noise_sample`` ... ``transverse_chromatic_abberation``).
        severity: 1 to 5 (the five levels of ``cifar10_c_bar.csv``).
        seed: Non-negative seed; the same seed and batch always give the same images.

    Returns:
        A new uint8 array of the same shape.

    Raises:
        UnknownNameError: for an unknown corruption name (the message lists close matches and all names).
        ConfigError: for a severity outside 1..5 or a negative seed.
        DataFormatError: for images that are not uint8 ``(N, 32, 32, 3)``.
    """
    IMPLEMENTATIONS.get(name)
    check_severity(severity)
    out = np.empty(check_bar_images(images).shape, dtype=np.uint8)
    corrupt_bar_into(out, images, name, severity, seed=seed)
    return out
