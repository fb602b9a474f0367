"""Downloading an official CIFAR-C release from Zenodo, MD5-checked, extracted atomically."""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from tqdm import tqdm

from moo_compress.data.datasets import dataset_info
from moo_compress.data.releases import RELEASES, ReleaseInfo
from moo_compress.errors import ConfigError, DataFormatError, DataNotFoundError
from moo_compress.fileio import atomic_open

__all__ = ["download_release"]


def _release_info(dataset: str) -> ReleaseInfo:
    dataset_info(dataset)  # unknown names raise with close matches
    if dataset not in RELEASES:
        raise ConfigError(f"no corruption release is known for {dataset!r}; known: {', '.join(RELEASES)}")
    return RELEASES[dataset]


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
        raise DataNotFoundError(
            f"could not download {url} ({exc}); download it by hand and extract it into {root}"
        ) from None
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
