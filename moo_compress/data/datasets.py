"""Clean image datasets as uint8 NHWC arrays: CIFAR-10/100 via torchvision, or ImageFolder trees.

Where a dataset is looked for (:func:`resolve_data_root`):

1. ``data_root`` (``--data-root DIR``): the dataset's own folder, either a torchvision root holding
   ``cifar-10-batches-py`` / ``cifar-100-python`` or an ImageFolder tree with ``train/`` and ``test/``;
2. ``$MOO_COMPRESS_DATA``: a folder of datasets, searched for a subfolder named after the dataset
   (``cifar10``, ``cifar10-jpeg``, ...; ``cifar10*`` never matches ``cifar100``);
3. ``<cache>/data/<dataset>``: a torchvision root, downloaded into when online.

Decoded arrays are cached on disk (``<cache>/arrays``), keyed by the source files' names, sizes and
modification times, so a changed source invalidates the cache and a second load is a memory-map.
"""

from __future__ import annotations

import json
import os
import re
import urllib.error
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from moo_compress import paths
from moo_compress.errors import ConfigError, DataFormatError, DataNotFoundError
from moo_compress.fileio import atomic_save_npy, atomic_write_json, stable_hash
from moo_compress.registry import Registry

__all__ = [
    "DatasetInfo",
    "ArrayDataset",
    "DATASETS",
    "SPLITS",
    "dataset_info",
    "dataset_classes",
    "list_datasets",
    "resolve_data_root",
    "load_dataset",
    "load_image_folder",
]

SPLITS = ("train", "test")
_IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".webp"}
_CACHE_VERSION = 1


@dataclass(frozen=True)
class DatasetInfo:
    """Static facts about a dataset.

    Attributes:
        name: Registry name (``cifar10``).
        num_classes: Number of classes.
        folder_pattern: Regex matching folder names that hold this dataset under ``$MOO_COMPRESS_DATA``.
        torchvision_class: Name of the torchvision dataset class.
        torchvision_folder: Folder torchvision extracts into under its root.
    """

    name: str
    num_classes: int
    folder_pattern: str
    torchvision_class: str
    torchvision_folder: str


DATASETS: Registry[DatasetInfo] = Registry("dataset")
DATASETS.register("cifar10", DatasetInfo("cifar10", 10, r"^cifar-?10(?!\d)", "CIFAR10", "cifar-10-batches-py"))
DATASETS.register("cifar100", DatasetInfo("cifar100", 100, r"^cifar-?100(?!\d)", "CIFAR100", "cifar-100-python"))
#: A user's ImageFolder tree (``--data DIR``): any number of classes, read from the folder.
DATASETS.register("imagefolder", DatasetInfo("imagefolder", 0, r"(?!)", "", ""))


def dataset_info(name: str) -> DatasetInfo:
    """The :class:`DatasetInfo` for ``name``; unknown names raise with close matches."""
    return DATASETS.get(name)


def dataset_classes(name: str, data_root: str | os.PathLike[str] | None = None) -> int:
    """Number of classes of ``name``: the registry's, or for ``imagefolder`` the class folders of
    ``data_root/test`` (``train`` when there is no ``test``).

    Raises:
        DataNotFoundError: for ``imagefolder`` without a folder holding ``test/<class>/`` or ``train/<class>/``.
    """
    info = dataset_info(name)
    if info.num_classes:
        return info.num_classes
    root, _ = resolve_data_root(name, data_root)
    split = root / "test" if (root / "test").is_dir() else root / "train"
    return sum(1 for d in split.iterdir() if d.is_dir())


def list_datasets() -> list[str]:
    """Names of the registered datasets."""
    return DATASETS.names()


@dataclass(frozen=True, eq=False)
class ArrayDataset:
    """Images and labels of one split, with a content fingerprint used as cache identity.

    Attributes:
        images: uint8 array (N, H, W, 3), possibly a read-only memory map.
        labels: int64 array (N,).
        classes: Class names in label order.
        name: Dataset name (``cifar10``).
        split: ``train`` or ``test`` (a subset keeps its parent's split).
        source: Where the images came from.
        fingerprint: Hex digest of the content (and of the subset indices, for subsets).
    """

    images: np.ndarray
    labels: np.ndarray
    classes: tuple[str, ...]
    name: str
    split: str
    source: str
    fingerprint: str

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @property
    def num_classes(self) -> int:
        """Number of classes."""
        return len(self.classes)

    def subset(self, indices: np.ndarray) -> ArrayDataset:
        """The images at ``indices`` (loaded into memory), with a fingerprint that names them."""
        indices = np.asarray(indices, dtype=np.int64)
        return ArrayDataset(
            images=np.ascontiguousarray(self.images[indices]),
            labels=np.ascontiguousarray(self.labels[indices]),
            classes=self.classes,
            name=self.name,
            split=self.split,
            source=self.source,
            fingerprint=stable_hash([self.fingerprint, stable_hash(indices.tolist())]),
        )


def _classify_root(root: Path, info: DatasetInfo) -> tuple[Path, str] | None:
    if (root / "train").is_dir() and (root / "test").is_dir():
        return root, "imagefolder"
    if not info.torchvision_folder:
        return None
    if (root / info.torchvision_folder).is_dir():
        return root, "torchvision"
    if root.name == info.torchvision_folder and root.is_dir():
        return root.parent, "torchvision"
    return None


def resolve_data_root(name: str, data_root: str | os.PathLike[str] | None = None) -> tuple[Path, str]:
    """Finds the folder of dataset ``name``; returns ``(folder, kind)`` with kind ``imagefolder`` or ``torchvision``.

    Raises:
        DataNotFoundError: if ``data_root`` or ``$MOO_COMPRESS_DATA`` is set but holds no such dataset.
    """
    info = dataset_info(name)
    layouts = f"an ImageFolder tree (train/<class>/*, test/<class>/*) or a torchvision root holding {info.torchvision_folder}/"
    if not info.num_classes:  # a user's ImageFolder tree: only where it is given
        layouts = "an ImageFolder tree (train/<class>/*, test/<class>/*)"
        if data_root is None:
            raise DataNotFoundError(f"dataset {name!r} is a folder of your own: pass --data DIR, {layouts}")
    if data_root is not None:
        root = Path(data_root).expanduser()
        if not root.is_dir():
            raise DataNotFoundError(f"--data-root {root} does not exist; point it at {layouts}")
        found = _classify_root(root, info)
        if found is None:
            raise DataNotFoundError(f"--data-root {root} is not {layouts}")
        return found
    env = paths.data_dir()
    if env is not None:
        if not env.is_dir():
            raise DataNotFoundError(f"${paths.DATA_ENV}={env} does not exist; set it to a folder of datasets")
        for sub in sorted(env.iterdir()):
            if sub.is_dir() and re.match(info.folder_pattern, sub.name.lower()):
                found = _classify_root(sub, info)
                if found is not None:
                    return found
        raise DataNotFoundError(
            f"no {name} dataset under ${paths.DATA_ENV}={env}: expected a subfolder named like '{name}' or "
            f"'{name}-jpeg' holding {layouts}; or pass --data-root"
        )
    return paths.cache_dir() / "data" / name, "torchvision"


def _listing_key(files: list[Path], root: Path) -> str:
    entries = []
    for f in files:
        st = f.stat()
        entries.append([str(f.relative_to(root)), st.st_size, st.st_mtime_ns])
    return stable_hash([_CACHE_VERSION, entries])


def _cached_arrays(
    cache: Path, tag: str, key: str, build: Callable[[], tuple[np.ndarray, np.ndarray, list[str]]]
) -> tuple[np.ndarray, np.ndarray, tuple[str, ...], str]:
    folder = cache / "arrays" / f"{tag}-{key}"
    meta_path = folder / "meta.json"
    if meta_path.is_file():  # written last: its presence means both arrays are complete
        meta = json.loads(meta_path.read_text())
        images = np.load(folder / "images.npy", mmap_mode="r")
        labels = np.load(folder / "labels.npy")
        return images, labels, tuple(meta["classes"]), meta["fingerprint"]
    images, labels, classes = build()
    fingerprint = stable_hash([_digest(images), _digest(labels)])
    atomic_save_npy(folder / "images.npy", images)
    atomic_save_npy(folder / "labels.npy", labels)
    atomic_write_json(meta_path, {"classes": list(classes), "fingerprint": fingerprint, "shape": list(images.shape)})
    return images, labels, tuple(classes), fingerprint


def _digest(array: np.ndarray) -> str:
    import hashlib

    return hashlib.sha256(np.ascontiguousarray(array).data).hexdigest()


def _decode(path: Path) -> np.ndarray:
    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"))


def load_image_folder(root: str | os.PathLike[str], split: str, *, name: str, cache: Path | None = None) -> ArrayDataset:
    """Loads ``root/<split>/<class>/*`` into arrays (classes in sorted order, as torchvision's ImageFolder).

    Raises:
        DataNotFoundError: if the split folder is missing or empty.
        DataFormatError: if images differ in size.
    """
    root = Path(root)
    split_dir = root / split
    if not split_dir.is_dir():
        raise DataNotFoundError(f"{split_dir} does not exist; an ImageFolder dataset needs {root}/{split}/<class>/*")
    classes = sorted(d.name for d in split_dir.iterdir() if d.is_dir())
    files: list[Path] = []
    labels: list[int] = []
    for index, cls in enumerate(classes):
        members = sorted(f for f in (split_dir / cls).iterdir() if f.suffix.lower() in _IMAGE_SUFFIXES)
        files += members
        labels += [index] * len(members)
    if not files:
        raise DataNotFoundError(f"no images under {split_dir}/<class>/ (looked for {', '.join(sorted(_IMAGE_SUFFIXES))})")

    def build() -> tuple[np.ndarray, np.ndarray, list[str]]:
        with ThreadPoolExecutor(max_workers=min(8, (os.cpu_count() or 1) * 2)) as pool:
            decoded = list(pool.map(_decode, files, chunksize=256))
        shapes = {a.shape for a in decoded}
        if len(shapes) != 1:
            odd = next(f for f, a in zip(files, decoded) if a.shape != decoded[0].shape)
            raise DataFormatError(f"images under {split_dir} differ in size ({sorted(shapes)[:3]}), e.g. {odd}")
        return np.stack(decoded), np.asarray(labels, dtype=np.int64), classes

    cache = cache or paths.cache_dir()
    images, labels_arr, class_names, fingerprint = _cached_arrays(
        cache, f"{name}-{split}", _listing_key(files, split_dir), build
    )
    return ArrayDataset(images, labels_arr, class_names, name, split, str(split_dir), fingerprint)


def _load_torchvision(info: DatasetInfo, root: Path, split: str, *, download: bool, cache: Path) -> ArrayDataset:
    import torchvision

    folder = root / info.torchvision_folder
    cls = getattr(torchvision.datasets, info.torchvision_class)
    how = (
        f"pass --data-root DIR (a torchvision root or an ImageFolder tree), set ${paths.DATA_ENV} to a folder "
        f"holding a '{info.name}' subfolder, or run once with network access to download it into {root}"
    )
    if not folder.is_dir() and not download:
        raise DataNotFoundError(f"{info.name} not found at {folder}; {how}")
    files = sorted(f for f in folder.iterdir() if f.is_file()) if folder.is_dir() else []

    def build() -> tuple[np.ndarray, np.ndarray, list[str]]:
        try:
            ds = cls(str(root), train=(split == "train"), download=download)
        except (urllib.error.URLError, OSError, RuntimeError) as exc:
            raise DataNotFoundError(f"{info.name} not found at {folder} and could not be downloaded ({exc}); {how}") from None
        return np.asarray(ds.data, dtype=np.uint8), np.asarray(ds.targets, dtype=np.int64), list(ds.classes)

    if not files:  # download first so the cache key covers the downloaded files
        build()
        files = sorted(f for f in folder.iterdir() if f.is_file())
    images, labels, classes, fingerprint = _cached_arrays(
        cache, f"{info.name}-{split}", _listing_key(files, folder), build
    )
    return ArrayDataset(images, labels, classes, info.name, split, str(folder), fingerprint)


def load_dataset(
    name: str,
    split: str = "test",
    *,
    data_root: str | os.PathLike[str] | None = None,
    download: bool = True,
    cache_dir: str | os.PathLike[str] | None = None,
) -> ArrayDataset:
    """Loads one split of a dataset as uint8 NHWC arrays (see the module docstring for where it looks).

    Args:
        name: Registered dataset name (``cifar10``, ``cifar100``).
        split: ``train`` or ``test``.
        data_root: The dataset's own folder (``--data-root``).
        download: Whether torchvision may download the dataset when it is missing.
        cache_dir: Cache root for decoded arrays (default ``$MOO_COMPRESS_CACHE``).

    Raises:
        UnknownNameError: for an unknown dataset name.
        DataNotFoundError: if the data is missing; the message says where it looked and how to get it.
    """
    info = dataset_info(name)
    if split not in SPLITS:
        raise ConfigError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
    root, kind = resolve_data_root(name, data_root)
    cache = paths.cache_dir(cache_dir)
    if kind == "imagefolder":
        ds = load_image_folder(root, split, name=name, cache=cache)
        if info.num_classes and ds.num_classes != info.num_classes:
            raise DataFormatError(f"{root}/{split} has {ds.num_classes} class folders but {name} has {info.num_classes}")
        return ds
    return _load_torchvision(info, root, split, download=download and paths.data_dir() is None, cache=cache)
