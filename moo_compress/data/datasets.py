"""Clean image datasets as uint8 NHWC arrays: CIFAR-10/100 via torchvision, or ImageFolder trees.

Where a dataset is looked for (:func:`resolve_data_root`):

1. ``data_root`` (``--data-root DIR``): the dataset's own folder, either a torchvision root holding
   ``cifar-10-batches-py`` / ``cifar-100-python`` or an ImageFolder tree with ``train/`` and ``test/``;
2. ``$MOO_COMPRESS_DATA``: a folder of datasets, searched for a subfolder named after the dataset
   (``cifar10``, ``cifar10-jpeg``, ...; ``cifar10*`` never matches ``cifar100``);
3. ``<cache>/data/<dataset>``: a torchvision root, downloaded into when online.

Decoded arrays are cached on disk (``<cache>/arrays``), keyed by the source files' names, sizes and
modification times, so a changed source invalidates the cache. A folder is decoded straight into a
memory-mapped file, and every later load is a memory map: a large set is never held in RAM whole.

ImageFolder trees may hold images of any size. Images of one size no larger than the model's input are
kept as they are (and upsampled whole later, after their corruptions); natural-resolution images (of
several sizes, or larger than the input) are brought to it when decoded, by the model's resize and
centre crop (:class:`~moo_compress.data.resize.Sizing`).
"""

from __future__ import annotations

import functools
import json
import os
import re
import tempfile
import urllib.error
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from moo_compress import paths
from moo_compress.data.resize import Sizing
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
    "dataset_labels",
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
    ``data_root/test`` (``val``, else ``train``, when there is no ``test``).

    Raises:
        DataNotFoundError: for ``imagefolder`` without a folder holding ``test/<class>/`` or ``train/<class>/``.
    """
    info = dataset_info(name)
    if info.num_classes:
        return info.num_classes
    root, _ = resolve_data_root(name, data_root)
    split = next((root / s for s in ("test", "val") if (root / s).is_dir()), root / "train")
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
    if (root / "train").is_dir() and ((root / "test").is_dir() or (root / "val").is_dir()):
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
    layouts = ("an ImageFolder tree (train/<class>/*, test/<class>/*) or a torchvision root holding "
               f"{info.torchvision_folder}/")
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


def _cached_shape(cache: Path, tag: str, key: str) -> tuple[int, ...] | None:
    """The image-array shape of a complete cache entry, or None when there is none."""
    meta_path = cache / "arrays" / f"{tag}-{key}" / "meta.json"
    return tuple(json.loads(meta_path.read_text())["shape"]) if meta_path.is_file() else None


def _cached_arrays(
    cache: Path, tag: str, key: str, build: Callable[[Path], tuple[np.ndarray, list[str]]]
) -> tuple[np.ndarray, np.ndarray, tuple[str, ...], str]:
    """The cached ``(images memory map, labels, classes, fingerprint)``; on a miss ``build(path)`` writes
    the images to ``path`` (a ``.npy`` file, atomically) and returns the labels and class names."""
    folder = cache / "arrays" / f"{tag}-{key}"
    meta_path = folder / "meta.json"
    if not meta_path.is_file():  # written last: its presence means both arrays are complete
        folder.mkdir(parents=True, exist_ok=True)
        labels, classes = build(folder / "images.npy")
        images = np.load(folder / "images.npy", mmap_mode="r")
        fingerprint = stable_hash([_digest(images), _digest(labels)])
        atomic_save_npy(folder / "labels.npy", labels)
        atomic_write_json(meta_path, {"classes": list(classes), "fingerprint": fingerprint,
                                      "shape": list(images.shape)})
    meta = json.loads(meta_path.read_text())
    images = np.load(folder / "images.npy", mmap_mode="r")
    labels = np.load(folder / "labels.npy")
    return images, labels, tuple(meta["classes"]), meta["fingerprint"]


def _digest(array: np.ndarray, *, rows: int = 4096) -> str:
    import hashlib

    digest = hashlib.sha256()
    for start in range(0, max(len(array), 1), rows):  # in slices: a memory map is read, never copied whole
        digest.update(np.ascontiguousarray(array[start:start + rows]).data)
    return digest.hexdigest()


def _image_size(path: Path) -> tuple[int, int]:
    with Image.open(path) as img:  # reads the header only
        return img.size


def _split_dir(root: Path, split: str) -> Path:
    """``root/<split>``; for ``test``, ``root/val`` where there is no ``test/``."""
    if split == "test" and not (root / "test").is_dir() and (root / "val").is_dir():
        return root / "val"
    return root / split


def _decode(path: Path) -> np.ndarray:
    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"))


def _decode_fit(path: Path, sizing: Sizing) -> np.ndarray:
    with Image.open(path) as img:
        return sizing.fit(img)


def _folder_listing(split_dir: Path) -> tuple[list[Path], list[int], list[str]]:
    classes = sorted(d.name for d in split_dir.iterdir() if d.is_dir())
    files: list[Path] = []
    labels: list[int] = []
    for index, cls in enumerate(classes):
        members = sorted(f for f in (split_dir / cls).iterdir() if f.suffix.lower() in _IMAGE_SUFFIXES)
        files += members
        labels += [index] * len(members)
    return files, labels, classes


def load_image_folder(
    root: str | os.PathLike[str],
    split: str,
    *,
    name: str,
    cache: Path | None = None,
    sizing: Sizing | None = None,
) -> ArrayDataset:
    """Loads ``root/<split>/<class>/*`` into arrays (classes in sorted order, as torchvision's ImageFolder).

    Args:
        root: The tree's root.
        split: ``train`` or ``test`` (``val`` is read where there is no ``test``).
        name: Dataset name recorded with the arrays.
        cache: Cache root (default ``$MOO_COMPRESS_CACHE``).
        sizing: The model's input and resize-and-crop: natural-resolution images (several sizes, or
            larger than the input) are brought to it; images of one size no larger than it are kept.

    Raises:
        DataNotFoundError: if the split folder is missing or empty.
        DataFormatError: if images differ in size and no ``sizing`` says how to bring them to one.
    """
    root = Path(root)
    split_dir = _split_dir(root, split)
    if not split_dir.is_dir():
        raise DataNotFoundError(f"{split_dir} does not exist; an ImageFolder dataset needs {root}/{split}/<class>/*")
    files, labels, classes = _folder_listing(split_dir)
    if not files:
        raise DataNotFoundError(
            f"no images under {split_dir}/<class>/ (looked for {', '.join(sorted(_IMAGE_SUFFIXES))})"
        )

    cache = cache or paths.cache_dir()
    tag, plain = f"{name}-{split}", _listing_key(files, split_dir)
    fitted = None if sizing is None else stable_hash([plain, sizing.to_dict()])
    workers = min(8, (os.cpu_count() or 1) * 2)
    kept = _cached_shape(cache, tag, plain)  # an earlier decode of the images as they are
    if fitted is not None and _cached_shape(cache, tag, fitted) is not None:
        fit = sizing
    elif kept is not None and (sizing is None or sizing.keeps({(kept[2], kept[1])})):
        fit = None
    else:  # decide from the image headers (cheap next to decoding)
        with ThreadPoolExecutor(max_workers=workers) as pool:
            sizes = set(pool.map(_image_size, files, chunksize=256))
        fit = None if sizing is None or sizing.keeps(sizes) else sizing
        if fit is None and len(sizes) != 1:
            raise DataFormatError(
                f"images under {split_dir} differ in size (width x height: {', '.join(map(str, sorted(sizes)[:3]))}"
                "...); give the model's input size (--input-size PIXELS, or a model whose metadata has one) and "
                "they are resized and centre-cropped to it")

    def build(path: Path) -> tuple[np.ndarray, list[str]]:
        if fit is None:
            decode: Callable[[Path], np.ndarray] = _decode
            height, width = _decode(files[0]).shape[:2]
        else:
            decode = functools.partial(_decode_fit, sizing=fit)
            height, width = fit.size
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=".images.", suffix=".npy.partial")
        os.close(fd)
        tmp = Path(name)  # unique: processes decoding the same folder at once never share a partial file
        try:
            out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(len(files), height, width, 3))
            with ThreadPoolExecutor(max_workers=workers) as pool:
                for start in range(0, len(files), 1024):  # decoded into the file, never all in memory
                    out[start:start + 1024] = np.stack(list(pool.map(decode, files[start:start + 1024])))
            out.flush()
            del out
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        return np.asarray(labels, dtype=np.int64), classes

    key = plain if fit is None else fitted
    images, labels_arr, class_names, fingerprint = _cached_arrays(cache, tag, key, build)  # type: ignore[arg-type]
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

    def fetch() -> Any:
        try:
            return cls(str(root), train=(split == "train"), download=download)
        except (urllib.error.URLError, OSError, RuntimeError) as exc:
            raise DataNotFoundError(
                f"{info.name} not found at {folder} and could not be downloaded ({exc}); {how}"
            ) from None

    def build(path: Path) -> tuple[np.ndarray, list[str]]:
        ds = fetch()
        atomic_save_npy(path, np.asarray(ds.data, dtype=np.uint8))
        return np.asarray(ds.targets, dtype=np.int64), list(ds.classes)

    if not files:  # download first so the cache key covers the downloaded files
        fetch()
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
    sizing: Sizing | None = None,
) -> ArrayDataset:
    """Loads one split of a dataset as uint8 NHWC arrays (see the module docstring for where it looks).

    Args:
        name: Registered dataset name (``cifar10``, ``cifar100``, ``imagefolder``).
        split: ``train`` or ``test``.
        data_root: The dataset's own folder (``--data-root``).
        download: Whether torchvision may download the dataset when it is missing.
        cache_dir: Cache root for decoded arrays (default ``$MOO_COMPRESS_CACHE``).
        sizing: The model's input and resize-and-crop, for ImageFolder trees of natural-resolution
            images (:func:`load_image_folder`); CIFAR arrays are kept at 32 pixels.

    Raises:
        UnknownNameError: for an unknown dataset name.
        DataNotFoundError: if the data is missing; the message says where it looked and how to get it.
        DataFormatError: for an ImageFolder tree of mixed image sizes without ``sizing``.
    """
    info = dataset_info(name)
    if split not in SPLITS:
        raise ConfigError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
    root, kind = resolve_data_root(name, data_root)
    cache = paths.cache_dir(cache_dir)
    if kind == "imagefolder":
        ds = load_image_folder(root, split, name=name, cache=cache, sizing=sizing)
        if info.num_classes and ds.num_classes != info.num_classes:
            raise DataFormatError(
                f"{root}/{split} has {ds.num_classes} class folders but {name} has {info.num_classes}"
            )
        return ds
    return _load_torchvision(info, root, split, download=download and paths.data_dir() is None, cache=cache)


def dataset_labels(
    name: str,
    split: str = "test",
    *,
    data_root: str | os.PathLike[str] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
) -> np.ndarray:
    """The labels of one split, in :func:`load_dataset`'s order, without decoding an ImageFolder tree's
    images (its labels follow from the listing), so that they need no input size.

    Raises:
        as :func:`load_dataset`.
    """
    info = dataset_info(name)
    root, kind = resolve_data_root(name, data_root)
    if kind == "imagefolder" and split in SPLITS:
        split_dir = _split_dir(root, split)
        if split_dir.is_dir():
            files, labels, classes = _folder_listing(split_dir)
            if files and not (info.num_classes and len(classes) != info.num_classes):
                return np.asarray(labels, dtype=np.int64)
    return load_dataset(name, split, data_root=data_root, cache_dir=cache_dir).labels  # raises what it lacks
