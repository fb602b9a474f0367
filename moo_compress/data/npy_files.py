"""Checked reading of uint8 / integer ``.npy`` files: header, dtype, shape and truncation.

A release file or a cached file that was cut short by an interrupted download or generation still
has a valid header; memory-mapping it would fail late or read garbage. :func:`load_npy` checks the
file's size against what its header promises before mapping it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from moo_compress.errors import DataFormatError

__all__ = ["npy_header", "load_npy"]


def npy_header(path: Path) -> tuple[tuple[int, ...], np.dtype, int]:
    """Shape, dtype and data offset of a ``.npy`` file.

    Raises:
        DataFormatError: if the file is not a readable ``.npy`` file.
    """
    try:
        with open(path, "rb") as handle:
            version = np.lib.format.read_magic(handle)
            if version == (1, 0):
                shape, _, dtype = np.lib.format.read_array_header_1_0(handle)
            else:
                shape, _, dtype = np.lib.format.read_array_header_2_0(handle)
            return tuple(shape), np.dtype(dtype), handle.tell()
    except (ValueError, OSError, SyntaxError) as exc:
        raise DataFormatError(f"{path} is not a readable .npy file ({exc}); re-download or regenerate it") from None


def load_npy(path: Path, *, shape: tuple[int, ...], what: str, integer: bool = False) -> np.ndarray:
    """Memory-maps ``path`` after checking its header and that the file is not truncated.

    Args:
        path: The ``.npy`` file.
        shape: The shape it must have.
        what: What it holds, for error messages (``labels``, ``5 severities x 10000 images``).
        integer: Accept any integer dtype (labels); otherwise only uint8 (images).

    Raises:
        DataFormatError: for another dtype or shape, or a file shorter than its header promises.
    """
    found_shape, dtype, offset = npy_header(path)
    if (integer and dtype.kind not in "iu") or (not integer and dtype != np.uint8):
        raise DataFormatError(f"{path} holds {dtype} {what}; expected {'integers' if integer else 'uint8'}")
    if found_shape != shape:
        raise DataFormatError(f"{path} has shape {found_shape}; expected {shape} ({what})")
    expected = offset + int(np.prod(shape)) * dtype.itemsize
    size = path.stat().st_size
    if size < expected:
        raise DataFormatError(
            f"{path} is truncated: {size:,} bytes where its header promises {expected:,}; "
            "the download or generation was interrupted, re-download or regenerate it"
        )
    return np.load(path, mmap_mode="r")
