"""Corrupted test sets: CIFAR-10-C / CIFAR-100-C releases, generation in their layout at any image size,
ImageNet-C-style release folders, and the cached corrupted subsets evaluation uses.

Release layout (official CIFAR-C, and what :func:`generate_release` writes): one ``<corruption>.npy``
per corruption, uint8 ``(S * N, H, W, 3)`` (CIFAR: 32 x 32) with the ``N`` test images of severity ``s``
in rows ``[(s - 1) N, s N)`` (official: ``S = 5``, ``N = 10,000``, test-set order), and ``labels.npy``,
the ``N`` labels repeated ``S`` times. A generated release also holds a manifest, ``moo_compress.json``,
recording its severities, seed, parameter set, generator version and the clean set it came from.
ImageNet-C and Tiny-ImageNet-C folders (``<corruption>/<severity>/<class>/<image>``) are read by
:mod:`~moo_compress.data.release_folders`.

:func:`load_corrupted` is what evaluation uses: the images of every (corruption, severity) over a
fixed stratified subset (or all images), from a release when one is found, else generated from the
clean test set (with the parameter set of its image size, or the one named) and cached
(:mod:`~moo_compress.data.image_store`: raw ``.npy``, PNG-compressed above 32 MiB per file); the
returned :class:`CorruptedSet` carries a fingerprint naming exactly those images.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import re
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from moo_compress import paths
from moo_compress.data import image_store, release_folders
from moo_compress.data.corrupted_set import CorruptedSet, LazyImages
from moo_compress.data.corruption_jobs import Job, create_npy, default_workers, run_jobs, sync_file
from moo_compress.data.corruptions import (
    ALL_CORRUPTIONS,
    BENCHMARK_CORRUPTIONS,
    DEFAULT_PARAM_SET,
    GENERATOR_VERSION,
    SEVERITIES,
    ParamSet,
    block_size,
    check_severities,
    get_param_set,
    param_set_for_size,
    resolve_corruptions,
    resolve_param_set,
)
from moo_compress.data.corruptions.api import check_corruption_images
from moo_compress.data.datasets import ArrayDataset, dataset_info
from moo_compress.data.subsets import stratified_indices
from moo_compress.errors import ConfigError, DataFormatError, DataNotFoundError
from moo_compress.fileio import (
    atomic_open,
    atomic_save_npy,
    atomic_write_json,
    atomic_write_text,
    make_readable,
    sha256_file,
    stable_hash,
)

__all__ = [
    "CorruptedSet",
    "ReleaseInfo",
    "RELEASES",
    "MANIFEST",
    "CorruptionRelease",
    "CorruptedSet",
    "open_release",
    "find_release",
    "download_release",
    "generate_release",
    "load_corrupted",
]

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


def _release_info(dataset: str) -> ReleaseInfo:
    dataset_info(dataset)  # unknown names raise with close matches
    if dataset not in RELEASES:
        raise ConfigError(f"no corruption release is known for {dataset!r}; known: {', '.join(RELEASES)}")
    return RELEASES[dataset]


# --------------------------------------------------------------------------------------------------
# Reading a release


def _npy_header(path: Path) -> tuple[tuple[int, ...], np.dtype, int]:
    """Shape, dtype and data offset of a ``.npy`` file; raises DataFormatError if it is not one."""
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


def _load_npy(path: Path, *, shape: tuple[int, ...], what: str, integer: bool = False) -> np.ndarray:
    """Memory-maps ``path`` after checking its header (shape; uint8, or any integer dtype when
    ``integer``) and that the file is not truncated."""
    found_shape, dtype, offset = _npy_header(path)
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
        shape = _npy_header(self.root / f"{self.corruptions[0]}.npy")[0]
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
            self._arrays[corruption] = _load_npy(self.root / f"{corruption}.npy", shape=shape,
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
    shape = _npy_header(labels_path)[0]
    if len(shape) != 1 or shape[0] == 0 or shape[0] % len(severities):
        raise DataFormatError(f"{labels_path} has shape {shape}; expected ({len(severities)} x N,) labels")
    labels = np.asarray(_load_npy(labels_path, shape=shape, what="labels", integer=True))
    blocks = labels.reshape(len(severities), -1)
    if not (blocks == blocks[0]).all():
        raise DataFormatError(f"{labels_path} is not one block of labels repeated for each of {len(severities)} severities")
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


# --------------------------------------------------------------------------------------------------
# Downloading an official release


def download_release(
    dataset: str,
    root: str | os.PathLike[str],
    *,
    url: str | None = None,
    md5: str | None = None,
    progress: bool = True,
) -> Path:
    """Downloads and extracts the official release of ``dataset`` into ``root``; returns its folder.

    The archive (about 2.9 GB) is MD5-checked before extraction and extracted into a temporary folder
    renamed at the end, so an interrupted download never leaves a release that looks complete.
    Setting ``MOO_COMPRESS_OFFLINE=1`` forbids the download.

    Raises:
        DataNotFoundError: when offline or the download fails.
        DataFormatError: when the archive's MD5 is wrong or it lacks the release folder.
    """
    info = _release_info(dataset)
    url = url or info.url
    md5 = md5 or info.md5
    root = Path(root).expanduser()
    final = root / info.folder
    if (final / "labels.npy").is_file():
        return final
    if os.environ.get("MOO_COMPRESS_OFFLINE"):
        raise DataNotFoundError(f"{info.folder} is not in {root} and MOO_COMPRESS_OFFLINE is set; "
                                f"download {url} (MD5 {md5}) and extract it there")
    root.mkdir(parents=True, exist_ok=True)
    archive = root / info.filename
    digest = hashlib.md5()
    try:
        with urllib.request.urlopen(url) as response, atomic_open(archive, "wb") as handle:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=info.filename, disable=not progress) as bar:
                for chunk in iter(lambda: response.read(1 << 20), b""):
                    handle.write(chunk)
                    digest.update(chunk)
                    bar.update(len(chunk))
    except (urllib.error.URLError, OSError) as exc:
        raise DataNotFoundError(f"could not download {url} ({exc}); download it by hand and extract it into {root}") from None
    if digest.hexdigest() != md5:
        archive.unlink()
        raise DataFormatError(f"{url} downloaded with MD5 {digest.hexdigest()}, expected {md5}; try again")
    scratch = Path(tempfile.mkdtemp(dir=root, prefix=f".{info.folder}."))
    try:
        with tarfile.open(archive) as tar:
            tar.extractall(scratch, filter="data")
        extracted = scratch / info.folder
        if not (extracted / "labels.npy").is_file():
            raise DataFormatError(f"{archive} does not hold {info.folder}/labels.npy")
        os.replace(extracted, final)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    archive.unlink()
    return final


# --------------------------------------------------------------------------------------------------
# Generating a release


def _progress_bar(total: int, desc: str, enabled: bool) -> tqdm:
    return tqdm(total=total, unit="img", unit_scale=True, desc=desc, disable=not enabled, smoothing=0.05)


def _generation_key(clean_fingerprint: str, indices_hash: str, seed: int, severities: tuple[int, ...],
                    pset: ParamSet, shape: tuple[int, ...]) -> dict:
    key = {
        "generator_version": GENERATOR_VERSION,
        "params": pset.fingerprint(),
        "block_size": block_size(*shape[:2]),
        "seed": seed,
        "clean_fingerprint": clean_fingerprint,
        "indices": indices_hash,
        "severities": list(severities),
    }
    if pset.name != DEFAULT_PARAM_SET:  # absent: cifar, so keys written before parameter sets stay valid
        key["param_set"] = pset.name
    return key


def _labels_dtype(labels: np.ndarray) -> np.dtype:
    return np.dtype(np.uint8) if labels.size == 0 or int(labels.max()) < 256 else np.dtype(np.int64)


def generate_release(
    clean: ArrayDataset,
    out_dir: str | os.PathLike[str],
    *,
    corruptions: str | Iterable[str] | None = None,
    severities: int | Iterable[int] | None = None,
    seed: int = 0,
    workers: int | None = None,
    progress: bool = True,
    params: str | ParamSet | None = None,
) -> Path:
    """Writes the release layout for ``clean`` (any uint8 ``(N, H, W, 3)`` test set) into ``out_dir``.

    Each ``<corruption>.npy`` is filled through a memory map in a hidden temporary file that is synced
    and renamed once complete, so the full set is never held in RAM and an interrupted run never leaves
    a file that looks complete. The manifest lists the finished files; a rerun with the same settings
    skips them. Images equal ``corrupt(clean.images, name, s, seed=seed)`` whatever ``workers`` is.

    Args:
        clean: The clean images and labels, in the order the release keeps.
        out_dir: Output folder (created).
        corruptions: Names or groups (``all``, ``benchmark``, ``extra``, a family); default all 19.
        severities: Severities to write, in blocks in increasing order; default 1..5 (the official layout).
        seed: Corruption seed.
        workers: Processes; default one per available CPU. Workers are spawned, so a script that calls
            this with more than one worker needs the usual ``if __name__ == "__main__":`` guard.
        progress: Show a progress bar.
        params: Corruption parameter set (``cifar``, ``tinyimagenet``, ``imagenet``, a ParamSet); None
            for the set of the images' size. Recorded in the manifest.

    Returns:
        ``out_dir``.
    """
    names = resolve_corruptions(corruptions)
    sevs = check_severities(severities)
    check_corruption_images(clean.images)
    shape = tuple(int(v) for v in clean.images.shape[1:])
    pset = resolve_param_set(params, *shape[:2])
    out = Path(out_dir).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    key = _generation_key(clean.fingerprint, stable_hash([len(clean)]), seed, sevs, pset, shape)
    manifest_path = out / MANIFEST
    manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
    expected_bytes = None
    complete = []
    digests: dict[str, str] = {}
    if manifest.get("key") == key:
        for name in manifest.get("complete", []):
            path = out / f"{name}.npy"
            if path.is_file():
                expected_bytes = expected_bytes or _npy_header(path)[2] + len(sevs) * len(clean) * int(np.prod(shape))
                recorded = manifest.get("sha256", {}).get(name)
                # reused only when it still holds the bytes written (size first: it is free)
                if path.stat().st_size == expected_bytes and recorded == sha256_file(path):
                    complete.append(name)
                    digests[name] = recorded
    manifest = {"key": key, "dataset": clean.name, "source": clean.source, "severities": list(sevs), "seed": seed,
                "params": pset.name, "shape": list(shape), "complete": complete, "sha256": digests,
                "images": len(clean)}
    labels = np.tile(clean.labels, len(sevs))
    atomic_save_npy(out / "labels.npy", labels.astype(_labels_dtype(labels)))
    atomic_write_json(manifest_path, manifest)

    todo = [name for name in names if name not in complete]
    temps: dict[Path, str] = {}
    jobs = []
    for name in todo:
        fd, tmp = tempfile.mkstemp(dir=out, prefix=f".{name}.npy.", suffix=".tmp")
        os.close(fd)
        create_npy(Path(tmp), len(sevs) * len(clean), shape)
        temps[Path(tmp)] = name
        jobs += [Job(name, s, Path(tmp), row=i * len(clean), params=pset) for i, s in enumerate(sevs)]

    def target_done(tmp: Path) -> None:
        name = temps.pop(tmp)
        sync_file(tmp)
        make_readable(tmp)
        manifest["sha256"][name] = sha256_file(tmp)
        os.replace(tmp, out / f"{name}.npy")
        manifest["complete"] = [n for n in ALL_CORRUPTIONS if n in set(manifest["complete"]) | {name}]
        atomic_write_json(manifest_path, manifest)

    workers = default_workers() if workers is None else max(1, int(workers))
    try:
        with _progress_bar(len(jobs) * len(clean), f"corrupting {clean.name}", progress) as bar:
            run_jobs(clean.images, jobs, seed=seed, workers=workers, scratch=out,
                     on_progress=bar.update, on_target_done=target_done)
    finally:
        for tmp in temps:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
    return out


# --------------------------------------------------------------------------------------------------
# Corrupted test sets for evaluation


def _select_indices(labels: np.ndarray, n_per_class: int | None, seed: int,
                    indices: np.ndarray | None = None) -> np.ndarray:
    if indices is not None:
        indices = np.asarray(indices, dtype=np.int64)
        if indices.ndim != 1 or (indices.size and (indices.min() < 0 or indices.max() >= len(labels))):
            raise ConfigError(f"indices must be positions in the {len(labels)} test images")
        return indices
    if n_per_class is None:
        return np.arange(len(labels), dtype=np.int64)
    return stratified_indices(labels, n_per_class, seed=seed).astype(np.int64)


def _from_release(root: Path, names: tuple[str, ...], sevs: tuple[int, ...], n_per_class: int | None,
                  seed: int, num_classes: int, chosen: np.ndarray | None = None) -> CorruptedSet:
    release = open_release(root, corruptions=names)
    missing = [s for s in sevs if s not in release.severities]
    if missing:
        raise DataNotFoundError(f"release {root} lacks severities {missing}; ask for {list(release.severities)}")
    if int(release.labels.max()) >= num_classes:
        raise DataFormatError(f"release {root} has labels up to {int(release.labels.max())}, "
                              f"more than the {num_classes} classes of the clean dataset")
    indices = _select_indices(release.labels, n_per_class, seed, chosen)
    subset = None if n_per_class is None and chosen is None else indices
    images = {(c, s): release.images(c, s, subset) for c in names for s in sevs}
    digest = hashlib.sha256()
    for key in sorted(images):
        digest.update(repr(key).encode())
        digest.update(np.ascontiguousarray(images[key]).data)
    labels = release.labels[indices]
    fingerprint = stable_hash(["release", digest.hexdigest(), labels.tolist()])
    return CorruptedSet(labels, indices, names, sevs, f"release {root}", fingerprint, images, release.params)


def _digest_path(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def _verified(path: Path) -> bool:
    """Whether a generated file exists and still has the content digest recorded when it was written.

    A file altered or truncated on disk, or one without a digest (written by an older version), is
    removed, so that it is generated again rather than reused by name.
    """
    if not path.is_file():
        return False
    digest = _digest_path(path)
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


def _generated(clean: ArrayDataset, names: tuple[str, ...], sevs: tuple[int, ...], n_per_class: int | None,
               seed: int, cache_dir: str | os.PathLike[str] | None, workers: int, progress: bool,
               chosen: np.ndarray | None = None, params: str | ParamSet | None = None) -> CorruptedSet:
    check_corruption_images(clean.images)
    shape = tuple(int(v) for v in clean.images.shape[1:])
    pset = resolve_param_set(params, *shape[:2])
    indices = _select_indices(clean.labels, n_per_class, seed, chosen)
    key = _generation_key(clean.fingerprint, stable_hash(indices.tolist()), seed, (), pset, shape)
    if set(names) - set(ALL_CORRUPTIONS):  # CIFAR-10-C-bar names: their own generator and parameters
        from moo_compress.data.corruptions_bar import GENERATOR_VERSION as BAR_VERSION, bar_params_fingerprint

        key["bar"] = [BAR_VERSION, bar_params_fingerprint()]
    folder = paths.cache_dir(cache_dir) / "corruptions" / f"{clean.name}-{stable_hash(key)}"
    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / "key.json").is_file():
        atomic_write_json(folder / "key.json", key)
    fmt = image_store.choose_format(len(indices), shape)
    todo = [(c, s) for c in names for s in sevs if not _verified(folder / image_store.file_name(c, s, fmt))]
    if todo:
        images = clean.images if n_per_class is None and chosen is None else clean.images[indices]
        temps: dict[Path, Path] = {}
        jobs = []
        for c, s in todo:
            name = image_store.file_name(c, s, fmt)
            fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{name}.", suffix=".tmp")
            os.close(fd)
            image_store.create(Path(tmp), len(indices), shape, fmt)
            temps[Path(tmp)] = folder / name
            jobs.append(Job(c, s, Path(tmp), params=pset, fmt=fmt))

        def target_done(tmp: Path) -> None:
            sync_file(tmp)
            make_readable(tmp)
            final = temps.pop(tmp)
            # the digest first: a run sharing the cache that finds the file finds its digest too
            # (finding a file without one, it would take the file for a stale one and delete it)
            atomic_write_text(_digest_path(final), sha256_file(tmp))
            os.replace(tmp, final)

        try:
            with _progress_bar(len(jobs) * len(indices), f"corrupting {clean.name}", progress) as bar:
                run_jobs(images, jobs, seed=seed, workers=workers, scratch=folder,
                         on_progress=bar.update, on_target_done=target_done)
        finally:
            for tmp in temps:
                with contextlib.suppress(FileNotFoundError):
                    tmp.unlink()
    loaders: dict[tuple[str, int], Callable[[], np.ndarray]] = {}
    for c in names:
        for s in sevs:
            path = folder / image_store.file_name(c, s, fmt)
            if fmt == "npy":
                array = _load_npy(path, shape=(len(indices), *shape), what=f"{len(indices)} generated images")
                loaders[(c, s)] = functools.partial(_same, array)
            else:
                loaders[(c, s)] = functools.partial(image_store.read_png_zip, path, len(indices), shape)
    fingerprint = stable_hash(["generated", key, names, sevs])
    labels = np.asarray(clean.labels[indices], dtype=np.int64)
    return CorruptedSet(labels, indices, names, sevs, f"generated {folder}", fingerprint, LazyImages(loaders),
                        pset.name)


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
        return _generated(clean_test, names, sevs, n_per_class, seed, cache_dir, max(1, int(workers)), progress,
                          indices, params)
    if not (root / "labels.npy").is_file() and release_folders.is_release_folder(root):
        chosen = _select_indices(clean_test.labels, n_per_class, seed, indices)
        corrupted = release_folders.load_release_folder(root, clean_test, names, sevs, chosen)
    else:
        corrupted = _from_release(root, names, sevs, n_per_class, seed, clean_test.num_classes, indices)
    if named is not None and named != corrupted.params:
        raise ConfigError(f"release {root} holds images made with the {corrupted.params} parameters, not {named}; "
                          "drop the parameter set to use the release, or the release to generate with it")
    return corrupted
