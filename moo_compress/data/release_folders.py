"""Release folders in the ImageNet-C / Tiny-ImageNet-C layout: ``<corruption>/<severity>/<class>/<image>``.

The official ImageNet-C (224 x 224 JPEG files, from the ImageNet validation set resized to 256 and
centre-cropped) and Tiny-ImageNet-C (64 x 64 JPEG files) keep each validation image's file name under
its class folder. An image of the clean test set (an ImageFolder tree, ``test/<class>/<file>`` or
``val/<class>/<file>``) is matched to ``<corruption>/<severity>/<class>/<file>``, by class folder name
and file name; the extension may differ (``.JPEG`` beside a clean ``.png``). The release's classes must
be the clean set's, or the labels would mean other classes.

Images are decoded when a (corruption, severity) is read, at the release's own size (224 or 64); a
model of another input size gets them resized whole, like any images smaller than its input.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from moo_compress.data.corrupted_set import CorruptedSet, LazyImages
from moo_compress.data.corruptions import ALL_CORRUPTIONS, param_set_for_size
from moo_compress.data.datasets import ArrayDataset, _folder_listing
from moo_compress.errors import DataFormatError, DataNotFoundError
from moo_compress.fileio import stable_hash

__all__ = ["is_release_folder", "find_release_folder", "load_release_folder"]

_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".webp"}


def is_release_folder(root: Path) -> bool:
    """Whether ``root`` holds at least one ``<corruption>/<severity>/`` folder."""
    return any((root / name).is_dir() and any((root / name / str(s)).is_dir() for s in range(1, 6))
               for name in ALL_CORRUPTIONS)


def find_release_folder(root: Path) -> Path | None:
    """``root`` if it is a release folder, else its only subfolder that is one (an extracted archive nests
    ``Tiny-ImageNet-C/``), else None."""
    if is_release_folder(root):
        return root
    nested = [sub for sub in sorted(root.iterdir()) if sub.is_dir() and is_release_folder(sub)]
    return nested[0] if len(nested) == 1 else None


def _clean_files(clean: ArrayDataset) -> list[Path]:
    """The clean test set's image files, in its row order (the ImageFolder listing it was decoded from)."""
    split_dir = Path(clean.source)
    if not split_dir.is_dir():
        raise DataFormatError(f"an ImageNet-C-style release folder is matched to a clean ImageFolder test set by file "
                              f"names, but the clean set {clean.name!r} came from {clean.source}; load the clean "
                              "test set from its ImageFolder tree (--dataset imagefolder --data-root DIR)")
    files, labels, classes = _folder_listing(split_dir)
    if tuple(classes) != tuple(clean.classes) or len(files) != len(clean) or not np.array_equal(labels, clean.labels):
        raise DataFormatError(f"{split_dir} changed since the clean test set was loaded from it; load it again")
    return files


def _match(folder: Path, cls: str, clean_file: Path, stems: dict[Path, dict[str, Path]]) -> Path:
    exact = folder / cls / clean_file.name
    if exact.is_file():
        return exact
    if folder / cls not in stems:  # listed once per class folder, only when a name differs
        listed = (folder / cls).iterdir() if (folder / cls).is_dir() else iter(())
        stems[folder / cls] = {p.stem: p for p in listed if p.suffix.lower() in _SUFFIXES}
    found = stems[folder / cls].get(clean_file.stem)
    if found is None:
        raise DataNotFoundError(
            f"{folder / cls} has no image named like {clean_file.stem} (the clean test image {clean_file}): the "
            "release folder was not made from this test set; point --release-dir at the one that was")
    return found


def _check_classes(folder: Path, classes: Sequence[str]) -> None:
    if not folder.is_dir():
        raise DataNotFoundError(f"release folder {folder.parent.parent} lacks {folder.parent.name}/{folder.name}/; "
                                "ask for the corruptions and severities it holds")
    found = sorted(d.name for d in folder.iterdir() if d.is_dir())
    if found != sorted(classes):
        missing = sorted(set(classes) - set(found))[:3]
        extra = sorted(set(found) - set(classes))[:3]
        raise DataFormatError(
            f"{folder} has {len(found)} class folders that are not the clean test set's {len(classes)} (missing "
            f"{missing or 'none'}, unknown {extra or 'none'}); point --release-dir at the release made from this "
            "test set, or --data-root at the test set it was made from")


def _decode(paths: Sequence[Path]) -> np.ndarray:
    images = []
    for path in paths:
        with Image.open(path) as image:
            images.append(np.asarray(image.convert("RGB")))
    shapes = {image.shape for image in images}
    if len(shapes) > 1:
        raise DataFormatError(f"images of {paths[0].parent.parent} differ in size ({sorted(shapes)[:3]}); "
                              "a release folder holds images of one size")
    return np.stack(images) if images else np.zeros((0, 1, 1, 3), np.uint8)


def load_release_folder(root: Path, clean: ArrayDataset, corruptions: Sequence[str], severities: Sequence[int],
                        indices: np.ndarray) -> CorruptedSet:
    """The images of ``clean``'s test images ``indices`` under every (corruption, severity), from ``root``.

    Checks now that every (corruption, severity) folder has the clean set's classes and an image for
    each chosen test image; the images themselves are decoded when read.

    Raises:
        DataNotFoundError: for a missing ``<corruption>/<severity>/`` folder or image.
        DataFormatError: when class folders differ from the clean set's, or the clean set is not an
            ImageFolder tree.
    """
    files = _clean_files(clean)
    chosen = [files[i] for i in indices]
    classes = [clean.classes[int(clean.labels[i])] for i in indices]
    paths: dict[tuple[str, int], list[Path]] = {}
    stems: dict[Path, dict[str, Path]] = {}
    for corruption in corruptions:
        for severity in severities:
            folder = root / corruption / str(severity)
            _check_classes(folder, clean.classes)
            paths[(corruption, severity)] = [
                _match(folder, cls, f, stems) for cls, f in zip(classes, chosen, strict=True)
            ]
    listing = []
    for key in sorted(paths):
        for path in paths[key]:
            stat = path.stat()
            listing.append([os.path.relpath(path, root), stat.st_size, stat.st_mtime_ns])
    fingerprint = stable_hash(["release folder", listing])
    first = next(iter(paths.values()), [])
    params = "imagenet"
    if first:
        with Image.open(first[0]) as image:
            params = param_set_for_size(image.height, image.width).name
    loaders = {key: functools.partial(_decode, value) for key, value in paths.items()}
    labels = np.asarray(clean.labels[indices], dtype=np.int64)
    return CorruptedSet(labels, np.asarray(indices, dtype=np.int64), tuple(corruptions), tuple(severities),
                        f"release {root}", fingerprint, LazyImages(loaders), params)
