"""The files generated corrupted images are cached in: one per (corruption, severity), raw or PNG-compressed.

- ``<corruption>-<severity>.npy``: raw uint8 ``(N, H, W, 3)``, memory-mapped when read. Used while the
  file holds at most :data:`RAW_LIMIT_BYTES` (32 MiB): every CIFAR subset, all 10,000 CIFAR test images
  (29 MiB), or up to 222 images of 224 x 224 (the search's subsets are tens to a few hundred images).
- ``<corruption>-<severity>.png.zip``: larger sets. An uncompressed zip of lossless PNG files
  ``0000000.png``, ``0000001.png``, ... (RGB, one per image, in set order), opened by any tool. PNG
  at zlib level 1 stores corrupted 224-pixel images in about 2.3 times less space than raw (on
  CIFAR-10 test images upsampled to 224, all 19 corruptions; photographs with fine detail compress
  less), encodes in about 4 ms and decodes in about 1.6 ms per image (one core), against 5 to 20 ms to
  corrupt one. Lossless, so the images read back are exactly those :func:`~moo_compress.data.corruptions.corrupt`
  returns, and fingerprints stay keys of what was generated. (Lossy JPEG, as the official ImageNet-C
  folders store at quality 85, would be about 5 times smaller again but would change the images.)

A PNG file is decoded whole when its images are asked for, so a set larger than memory is read one
(corruption, severity) at a time (:class:`~moo_compress.data.cifar_c.CorruptedSet` decodes on access).
"""

from __future__ import annotations

import zipfile
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from moo_compress.errors import DataFormatError

__all__ = ["RAW_LIMIT_BYTES", "FORMATS", "choose_format", "file_name", "create", "encode_png", "PngZipWriter",
           "read_png_zip"]

#: Largest file kept raw (memory-mapped ``.npy``); larger ones are PNG-compressed.
RAW_LIMIT_BYTES = 32 * 2**20
#: Storage formats, by name: ``npy`` and ``png``.
FORMATS = {"npy": ".npy", "png": ".png.zip"}
_PNG_LEVEL = 1  # zlib level: 3 and 6 save 5% and 10% more for 1.4x and 3.4x the encoding time


def choose_format(count: int, shape: Sequence[int]) -> str:
    """``npy`` while ``count`` images of ``shape`` (H, W, 3) fit in :data:`RAW_LIMIT_BYTES`, else ``png``."""
    return "npy" if count * int(np.prod(shape)) <= RAW_LIMIT_BYTES else "png"


def file_name(corruption: str, severity: int, fmt: str) -> str:
    """``<corruption>-<severity>.npy`` or ``<corruption>-<severity>.png.zip``."""
    return f"{corruption}-{severity}{FORMATS[fmt]}"


def create(path: Path, count: int, shape: Sequence[int], fmt: str) -> None:
    """Creates an empty target: a uint8 ``.npy`` of ``count`` images (sparse on disk until written), or
    nothing for ``png`` (its writer creates the zip)."""
    if fmt == "npy":
        np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=(count, *shape)).flush()


def encode_png(images: np.ndarray) -> list[bytes]:
    """Lossless PNG files of uint8 RGB images ``(N, H, W, 3)``."""
    blobs = []
    for image in images:
        ok, data = cv2.imencode(
            ".png", np.ascontiguousarray(image[..., ::-1]), [cv2.IMWRITE_PNG_COMPRESSION, _PNG_LEVEL]
        )
        if not ok:
            raise RuntimeError("OpenCV could not encode a PNG")
        blobs.append(data.tobytes())
    return blobs


class PngZipWriter:
    """Writes PNG members ``<row>.png`` into a zip, in any order of rows (parallel chunks finish out of order)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._zip = zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED)

    def write(self, row: int, blobs: Sequence[bytes]) -> None:
        """Adds the PNG files of images ``row, row + 1, ...``."""
        for offset, blob in enumerate(blobs):
            self._zip.writestr(f"{row + offset:07d}.png", blob)

    def close(self) -> None:
        """Writes the zip's directory; the file is complete afterwards."""
        self._zip.close()


def read_png_zip(path: Path, count: int, shape: Sequence[int]) -> np.ndarray:
    """The ``count`` images of ``shape`` stored in a PNG zip, as one uint8 array.

    Raises:
        DataFormatError: if the file is not such a zip, or lacks an image, or holds one of another size.
    """
    out = np.empty((count, *shape), dtype=np.uint8)
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            for row in range(count):
                name = f"{row:07d}.png"
                if name not in names:
                    raise DataFormatError(f"{path} lacks image {name} of {count}; delete it and it is generated again")
                image = cv2.imdecode(np.frombuffer(archive.read(name), np.uint8), cv2.IMREAD_COLOR)
                if image is None or image.shape != tuple(shape):
                    found = None if image is None else image.shape
                    raise DataFormatError(f"{path}: {name} decodes to {found}, expected {tuple(shape)}; delete it "
                                          "and it is generated again")
                out[row] = image[..., ::-1]
    except (zipfile.BadZipFile, OSError) as exc:
        raise DataFormatError(f"{path} is not a readable zip of PNG images ({exc}); delete it and it is "
                              "generated again") from None
    return out

