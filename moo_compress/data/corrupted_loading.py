"""The corrupted test sets evaluation uses: :func:`load_corrupted` picks their source and subset.

The images of every (corruption, severity) over a fixed stratified subset (or all images) come from a
release when one is found (a ``.npy`` release, :mod:`~moo_compress.data.releases`, or an ImageNet-C-style
folder, :mod:`~moo_compress.data.release_folders`), else they are generated from the clean test set and
cached (:mod:`~moo_compress.data.corruption_cache`); the returned :class:`CorruptedSet` carries a
fingerprint naming exactly those images.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from moo_compress.data import release_folders
from moo_compress.data.corrupted_set import CorruptedSet
from moo_compress.data.corruption_cache import load_generated
from moo_compress.data.corruptions import (
    BENCHMARK_CORRUPTIONS,
    ParamSet,
    check_severities,
    get_param_set,
    resolve_corruptions,
)
from moo_compress.data.datasets import ArrayDataset
from moo_compress.data.releases import find_release, open_release
from moo_compress.data.subsets import select_indices
from moo_compress.errors import ConfigError, DataFormatError, DataNotFoundError
from moo_compress.fileio import stable_hash

__all__ = ["load_corrupted"]


def _from_release(root: Path, names: tuple[str, ...], sevs: tuple[int, ...], n_per_class: int | None,
                  seed: int, num_classes: int, chosen: np.ndarray | None = None) -> CorruptedSet:
    release = open_release(root, corruptions=names)
    missing = [s for s in sevs if s not in release.severities]
    if missing:
        raise DataNotFoundError(f"release {root} lacks severities {missing}; ask for {list(release.severities)}")
    if int(release.labels.max()) >= num_classes:
        raise DataFormatError(f"release {root} has labels up to {int(release.labels.max())}, "
                              f"more than the {num_classes} classes of the clean dataset")
    indices = select_indices(release.labels, n_per_class, seed, chosen)
    subset = None if n_per_class is None and chosen is None else indices
    images = {(c, s): release.images(c, s, subset) for c in names for s in sevs}
    digest = hashlib.sha256()
    for key in sorted(images):
        digest.update(repr(key).encode())
        digest.update(np.ascontiguousarray(images[key]).data)
    labels = release.labels[indices]
    fingerprint = stable_hash(["release", digest.hexdigest(), labels.tolist()])
    return CorruptedSet(labels, indices, names, sevs, f"release {root}", fingerprint, images, release.params)



def load_corrupted(
    clean_test: ArrayDataset,
    *,
    corruptions: str | Iterable[str] | None = BENCHMARK_CORRUPTIONS,
    severities: int | Iterable[int] | None = None,
    n_per_class: int | None = None,
    seed: int = 0,
    release_dir: str | os.PathLike[str] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    workers: int = 1,
    progress: bool = False,
    indices: np.ndarray | None = None,
    params: str | ParamSet | None = None,
) -> CorruptedSet:
    """The corrupted test images for every (corruption, severity), from a release or generated and cached.

    Source, in order: ``release_dir`` (an official or generated ``.npy`` release, or an ImageNet-C-style
    folder ``<corruption>/<severity>/<class>/<image>``); else a ``CIFAR-10-C``-like folder under
    ``$MOO_COMPRESS_DATA``; else the images are generated from ``clean_test`` (only those asked for) with
    the parameter set of its image size (or ``params``) and cached under ``<cache>/corruptions``
    (:mod:`~moo_compress.data.image_store`). A ``.npy`` release keeps the original test-set order and
    its own ``labels.npy``, so the stratified subset is drawn on the release's labels; a release folder
    is matched to ``clean_test``'s ImageFolder files by class folder and file name.

    Args:
        clean_test: The clean test set (used for its name, and as the source when generating).
        corruptions: Names or groups; default the 15 benchmark corruptions.
        severities: Default 1..5.
        n_per_class: Images per class of a fixed stratified subset (``seed``); None for every image.
        seed: Seed of the subset and of the corruptions.
        release_dir: A release folder to use instead of searching.
        cache_dir: Cache root (default ``$MOO_COMPRESS_CACHE``).
        workers: Processes used when generating.
        progress: Show a progress bar when generating.
        indices: Exactly these positions of the test set (e.g. a stratified subset of the report
            split), instead of a subset drawn by ``n_per_class`` and ``seed``.
        params: Corruption parameter set for generating: ``cifar``, ``tinyimagenet``, ``imagenet``, a
            :class:`~moo_compress.data.corruptions.ParamSet`, or None for the set of the images' size
            (:func:`~moo_compress.data.corruptions.param_set_for_size`). Part of the cache key. A
            release is used as it was made (``CorruptedSet.params`` says with which set); naming
            another set than a release's is an error.

    Returns:
        The :class:`CorruptedSet`; the same arguments always give the same images and fingerprint.

    Raises:
        DataNotFoundError: if ``release_dir`` is missing or lacks a requested corruption, severity or image.
        DataFormatError: if a release file is malformed or truncated, or a release folder's classes are
            not the clean set's.
        ConfigError: for bad names, severities or subset sizes, or ``params`` other than a release's.
        UnknownNameError: for an unknown parameter set.
    """
    names = resolve_corruptions(corruptions)
    sevs = check_severities(severities)
    if indices is not None and n_per_class is not None:
        raise ConfigError("pass either indices or n_per_class, not both")
    if n_per_class is not None and (not isinstance(n_per_class, (int, np.integer)) or n_per_class < 1):
        raise ConfigError(f"n_per_class must be a positive integer or None, got {n_per_class!r}")
    named = None if params is None else params.name if isinstance(params, ParamSet) else get_param_set(params).name
    root = find_release(clean_test.name, release_dir)
    if root is None:
        return load_generated(clean_test, names, sevs, n_per_class=n_per_class, seed=seed, cache_dir=cache_dir,
                              workers=max(1, int(workers)), progress=progress, chosen=indices, params=params)
    if not (root / "labels.npy").is_file() and release_folders.is_release_folder(root):
        chosen = select_indices(clean_test.labels, n_per_class, seed, indices)
        corrupted = release_folders.load_release_folder(root, clean_test, names, sevs, chosen)
    else:
        corrupted = _from_release(root, names, sevs, n_per_class, seed, clean_test.num_classes, indices)
    if named is not None and named != corrupted.params:
        raise ConfigError(f"release {root} holds images made with the {corrupted.params} parameters, not {named}; "
                          "drop the parameter set to use the release, or the release to generate with it")
    return corrupted
