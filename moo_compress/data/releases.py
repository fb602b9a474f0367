"""CIFAR-10-C / CIFAR-100-C releases: where they are published, finding one, and reading one lazily.

Release layout (official CIFAR-C, and what :func:`~moo_compress.data.release_generation.generate_release`
writes): one ``<corruption>.npy`` per corruption, uint8 ``(S * N, H, W, 3)`` (CIFAR: 32 x 32) with the
``N`` test images of severity ``s`` in rows ``[(s - 1) N, s N)`` (official: ``S = 5``, ``N = 10,000``,
test-set order), and ``labels.npy``, the ``N`` labels repeated ``S`` times. A generated release also
holds a manifest, :data:`MANIFEST`, recording its severities, seed, parameter set, generator version
and the clean set it came from. ImageNet-C and Tiny-ImageNet-C folders
(``<corruption>/<severity>/<class>/<image>``) are read by :mod:`~moo_compress.data.release_folders`.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from moo_compress import paths
from moo_compress.data import release_folders
from moo_compress.data.corruptions import (
    ALL_CORRUPTIONS,
    DEFAULT_PARAM_SET,
    SEVERITIES,
    param_set_for_size,
    resolve_corruptions,
)
from moo_compress.data.npy_files import load_npy, npy_header
from moo_compress.errors import DataFormatError, DataNotFoundError

__all__ = ["MANIFEST", "ReleaseInfo", "RELEASES", "CorruptionRelease", "open_release", "find_release"]

#: The manifest a generated release holds (an official release has none).
MANIFEST = "moo_compress.json"


@dataclass(frozen=True)
class ReleaseInfo:
    """Where an official release is published.

    Attributes:
        dataset: Clean dataset name (``cifar10``).
        folder: Folder the archive extracts to (``CIFAR-10-C``).
        record: Zenodo record number.
        filename: Archive name.
        md5: MD5 of the archive.
        folder_pattern: Regex (lower case) matching folder names that hold this release.
    """

    dataset: str
    folder: str
    record: int
    filename: str
    md5: str
    folder_pattern: str

    @property
    def url(self) -> str:
        """Download address of the archive."""
        return f"https://zenodo.org/records/{self.record}/files/{self.filename}?download=1"


RELEASES: dict[str, ReleaseInfo] = {
    "cifar10": ReleaseInfo("cifar10", "CIFAR-10-C", 2535967, "CIFAR-10-C.tar",
                           "56bf5dcef84df0e2308c6dcbcbbd8499", r"^cifar[-_]?10[-_]?c$"),
    "cifar100": ReleaseInfo("cifar100", "CIFAR-100-C", 3555552, "CIFAR-100-C.tar",
                            "11f0ed0f1191edbf9fa23466ae6021d3", r"^cifar[-_]?100[-_]?c$"),
}


@dataclass(frozen=True, eq=False)
class CorruptionRelease:
    """An opened release folder (official or generated), read lazily through memory maps.

    Attributes:
        root: The folder.
        labels: int64 labels of one severity block (``N``).
        severities: Severities stored, in block order (1..5 for an official release).
        corruptions: Corruptions whose ``.npy`` file is present, in reference order.
        manifest: The generation manifest, or None for an official release.
    """

    root: Path
    labels: np.ndarray
    severities: tuple[int, ...]
    corruptions: tuple[str, ...]
    manifest: Mapping[str, object] | None = None
    _arrays: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @property
    def params(self) -> str:
        """The parameter set the release was made with: its manifest's, else the one of its image size
        (an official CIFAR-C release: ``cifar``)."""
        if self.manifest is not None and "params" in self.manifest:
            return str(self.manifest["params"])
        if self.manifest is not None or not self.corruptions:
            return DEFAULT_PARAM_SET  # generated before parameter sets existed, or nothing to look at
        height, width = self.image_shape[:2]
        return param_set_for_size(height, width).name

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(H, W, 3)`` of the images: the manifest's, else the first corruption file's."""
        if self.manifest is not None and "shape" in self.manifest:
            return tuple(int(v) for v in self.manifest["shape"])  # type: ignore[attr-defined,return-value]
        if not self.corruptions:
            raise DataNotFoundError(f"{self.root} holds no <corruption>.npy file")
        shape = npy_header(self.root / f"{self.corruptions[0]}.npy")[0]
        if len(shape) != 4 or shape[3] != 3:
            raise DataFormatError(f"{self.root / self.corruptions[0]}.npy has shape {shape}; expected "
                                  f"({len(self.severities)} x {len(self)}, H, W, 3) images")
        return tuple(shape[1:])  # type: ignore[return-value]

    def array(self, corruption: str) -> np.ndarray:
        """The whole ``(S * N, H, W, 3)`` memory map of ``corruption``, checked on first access (every
        corruption of a release has the images of :attr:`image_shape`)."""
        if corruption not in self._arrays:
            if corruption not in self.corruptions:
                resolve_corruptions([corruption])  # unknown names raise with close matches
                raise DataNotFoundError(
                    f"{self.root} has no {corruption}.npy (it holds {', '.join(self.corruptions) or 'no corruption'})"
                )
            shape = (len(self.severities) * len(self), *self.image_shape)
            self._arrays[corruption] = load_npy(self.root / f"{corruption}.npy", shape=shape,
                                                 what=f"{len(self.severities)} severities x {len(self)} images")
        return self._arrays[corruption]

    def images(self, corruption: str, severity: int, indices: np.ndarray | None = None) -> np.ndarray:
        """Images of one corruption and severity: a memory-mapped block, or the rows at ``indices`` (a copy)."""
        if severity not in self.severities:
            raise DataNotFoundError(f"{self.root} holds severities {list(self.severities)}, not {severity}")
        start = self.severities.index(severity) * len(self)
        block = self.array(corruption)[start: start + len(self)]
        return block if indices is None else np.ascontiguousarray(block[indices])


def open_release(root: str | os.PathLike[str], *, corruptions: Iterable[str] | None = None) -> CorruptionRelease:
    """Opens a release folder and checks ``labels.npy`` and the ``.npy`` files of ``corruptions``.

    Args:
        root: Folder holding ``labels.npy`` and ``<corruption>.npy`` files.
        corruptions: Corruptions that must be present (checked now: shape, dtype, truncation); others
            are checked when first read.

    Raises:
        DataNotFoundError: if the folder, ``labels.npy`` or a requested corruption is missing.
        DataFormatError: if a file has the wrong shape or dtype, is truncated, or the labels are not one
            block repeated for every severity.
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DataNotFoundError(f"corruption release folder {root} does not exist")
    labels_path = root / "labels.npy"
    if not labels_path.is_file():
        raise DataNotFoundError(
            f"{root} holds no labels.npy, so it is not a CIFAR-C release (expected labels.npy and <corruption>.npy "
            "files, or an ImageNet-C folder <corruption>/<severity>/<class>/<image>)"
        )
    manifest = None
    severities = SEVERITIES
    if (root / MANIFEST).is_file():
        manifest = json.loads((root / MANIFEST).read_text())
        severities = tuple(int(s) for s in manifest["severities"])
    shape = npy_header(labels_path)[0]
    if len(shape) != 1 or shape[0] == 0 or shape[0] % len(severities):
        raise DataFormatError(f"{labels_path} has shape {shape}; expected ({len(severities)} x N,) labels")
    labels = np.asarray(load_npy(labels_path, shape=shape, what="labels", integer=True))
    blocks = labels.reshape(len(severities), -1)
    if not (blocks == blocks[0]).all():
        raise DataFormatError(
            f"{labels_path} is not one block of labels repeated for each of {len(severities)} severities"
        )
    present = tuple(name for name in ALL_CORRUPTIONS if (root / f"{name}.npy").is_file())
    release = CorruptionRelease(root, blocks[0].astype(np.int64), severities, present, manifest)
    for name in resolve_corruptions(corruptions) if corruptions is not None else ():
        release.array(name)
    return release


def find_release(dataset: str, release_dir: str | os.PathLike[str] | None = None) -> Path | None:
    """The release folder to use: ``release_dir`` if given, else one under ``$MOO_COMPRESS_DATA``.

    ``release_dir`` may be a ``.npy`` release (``labels.npy``), an ImageNet-C-style folder
    (``<corruption>/<severity>/<class>/<image>``), or a folder holding one of them. Under
    ``$MOO_COMPRESS_DATA`` a folder named like ``CIFAR-10-C`` / ``cifar10-c`` / ``cifar10_c`` (for
    cifar10) is used, or such a folder inside it (as an extracted archive nests it). Returns None when
    nothing is found.

    Raises:
        DataNotFoundError: if ``release_dir`` is given but does not exist.
    """
    if release_dir is not None:
        root = Path(release_dir).expanduser()
        if not root.is_dir():
            raise DataNotFoundError(f"release folder {root} does not exist")
        if not (root / "labels.npy").is_file():
            folder = release_folders.find_release_folder(root)
            if folder is not None:
                return folder
        info = RELEASES.get(dataset)
        nested = root / info.folder if info is not None else root
        return nested if not (root / "labels.npy").is_file() and (nested / "labels.npy").is_file() else root
    env = paths.data_dir()
    if dataset not in RELEASES or env is None or not env.is_dir():
        return None
    info = RELEASES[dataset]
    for sub in sorted(env.iterdir()):
        if sub.is_dir() and re.match(info.folder_pattern, sub.name.lower()):
            for candidate in (sub, sub / info.folder):
                if (candidate / "labels.npy").is_file():
                    return candidate
    return None
