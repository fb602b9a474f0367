"""Corrupted images generated from a clean test set and cached, for evaluation without a release.

Only the (corruption, severity) pairs asked for are generated, over the chosen test images, into
``<cache>/corruptions/<dataset>-<key>/`` (:mod:`~moo_compress.data.image_store` names and formats the
files). A file is written under a temporary name and renamed once complete, beside a digest of its
content; a file that no longer matches its digest is generated again rather than reused by name.
"""

from __future__ import annotations

import contextlib
import functools
import os
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

from moo_compress import paths
from moo_compress.data import image_store
from moo_compress.data.corrupted_set import CorruptedSet, LazyImages
from moo_compress.data.corruption_jobs import Job, generation_key, progress_bar, run_jobs, sync_file
from moo_compress.data.corruptions import ALL_CORRUPTIONS, ParamSet, resolve_param_set
from moo_compress.data.corruptions.api import check_corruption_images
from moo_compress.data.datasets import ArrayDataset
from moo_compress.data.npy_files import load_npy
from moo_compress.data.subsets import select_indices
from moo_compress.fileio import atomic_write_json, atomic_write_text, make_readable, sha256_file, stable_hash

__all__ = ["digest_path", "load_generated"]


def digest_path(path: Path) -> Path:
    """The file beside a generated file that records the SHA-256 of its content (``<name>.sha256``)."""
    return path.with_name(path.name + ".sha256")


def _verified(path: Path) -> bool:
    """Whether a generated file exists and still has the content digest recorded when it was written.

    A file altered or truncated on disk, or one without a digest (written by an older version), is
    removed, so that it is generated again rather than reused by name.
    """
    if not path.is_file():
        return False
    digest = digest_path(path)
    try:
        ok = digest.read_text().strip() == sha256_file(path)
    except OSError:
        ok = False
    if not ok:
        warnings.warn(f"{path} does not match the digest recorded when it was generated; generating it again",
                      RuntimeWarning, stacklevel=3)
        for stale in (path, digest):
            with contextlib.suppress(FileNotFoundError):
                stale.unlink()
    return ok


def _same(array: np.ndarray) -> np.ndarray:
    return array


def _write_missing(images: np.ndarray, todo: list[tuple[str, int]], folder: Path, *, count: int,
                   shape: tuple[int, ...], fmt: str, pset: ParamSet, seed: int, workers: int, progress: bool,
                   desc: str) -> None:
    """Corrupts ``images`` for every (corruption, severity) of ``todo`` into ``folder``, each file with its digest."""
    temps: dict[Path, Path] = {}
    jobs = []
    for c, s in todo:
        name = image_store.file_name(c, s, fmt)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{name}.", suffix=".tmp")
        os.close(fd)
        image_store.create(Path(tmp), count, shape, fmt)
        temps[Path(tmp)] = folder / name
        jobs.append(Job(c, s, Path(tmp), params=pset, fmt=fmt))

    def target_done(tmp: Path) -> None:
        sync_file(tmp)
        make_readable(tmp)
        final = temps.pop(tmp)
        # the digest first: a run sharing the cache that finds the file finds its digest too
        # (finding a file without one, it would take the file for a stale one and delete it)
        atomic_write_text(digest_path(final), sha256_file(tmp))
        os.replace(tmp, final)

    try:
        with progress_bar(len(jobs) * count, desc, progress) as bar:
            run_jobs(images, jobs, seed=seed, workers=workers, scratch=folder,
                     on_progress=bar.update, on_target_done=target_done)
    finally:
        for tmp in temps:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()


def load_generated(
    clean: ArrayDataset,
    names: tuple[str, ...],
    sevs: tuple[int, ...],
    *,
    n_per_class: int | None,
    seed: int,
    cache_dir: str | os.PathLike[str] | None,
    workers: int,
    progress: bool,
    chosen: np.ndarray | None = None,
    params: str | ParamSet | None = None,
) -> CorruptedSet:
    """The corrupted images of ``clean``'s chosen test images, generated where the cache lacks them.

    Args:
        clean: The clean test set the images are corrupted from.
        names: Corruptions (resolved names).
        sevs: Severities (checked).
        n_per_class: Images per class of a stratified subset (``seed``); None for every image.
        seed: Seed of the subset and of the corruptions.
        cache_dir: Cache root (default ``$MOO_COMPRESS_CACHE``).
        workers: Processes used when generating.
        progress: Show a progress bar when generating.
        chosen: Exactly these positions of the test set, instead of a subset drawn by ``n_per_class``.
        params: Corruption parameter set; None for the set of the images' size.

    Returns:
        The :class:`~moo_compress.data.corrupted_set.CorruptedSet`, read lazily from the cache.
    """
    check_corruption_images(clean.images)
    shape = tuple(int(v) for v in clean.images.shape[1:])
    pset = resolve_param_set(params, *shape[:2])
    indices = select_indices(clean.labels, n_per_class, seed, chosen)
    key = generation_key(clean.fingerprint, stable_hash(indices.tolist()), seed, (), pset, shape)
    if set(names) - set(ALL_CORRUPTIONS):  # CIFAR-10-C-bar names: their own generator and parameters
        from moo_compress.data.corruptions_bar import GENERATOR_VERSION as BAR_VERSION
        from moo_compress.data.corruptions_bar import bar_params_fingerprint

        key["bar"] = [BAR_VERSION, bar_params_fingerprint()]
    folder = paths.cache_dir(cache_dir) / "corruptions" / f"{clean.name}-{stable_hash(key)}"
    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / "key.json").is_file():
        atomic_write_json(folder / "key.json", key)
    fmt = image_store.choose_format(len(indices), shape)
    todo = [(c, s) for c in names for s in sevs if not _verified(folder / image_store.file_name(c, s, fmt))]
    if todo:
        images = clean.images if n_per_class is None and chosen is None else clean.images[indices]
        _write_missing(images, todo, folder, count=len(indices), shape=shape, fmt=fmt, pset=pset, seed=seed,
                       workers=workers, progress=progress, desc=f"corrupting {clean.name}")
    loaders: dict[tuple[str, int], Callable[[], np.ndarray]] = {}
    for c in names:
        for s in sevs:
            path = folder / image_store.file_name(c, s, fmt)
            if fmt == "npy":
                array = load_npy(path, shape=(len(indices), *shape), what=f"{len(indices)} generated images")
                loaders[(c, s)] = functools.partial(_same, array)
            else:
                loaders[(c, s)] = functools.partial(image_store.read_png_zip, path, len(indices), shape)
    fingerprint = stable_hash(["generated", key, names, sevs])
    labels = np.asarray(clean.labels[indices], dtype=np.int64)
    return CorruptedSet(labels, indices, names, sevs, f"generated {folder}", fingerprint, LazyImages(loaders),
                        pset.name)
