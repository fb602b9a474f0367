"""Corrupted test sets, by their former single home: re-exports of the modules that now hold them.

- :mod:`~moo_compress.data.releases`: CIFAR-C releases (where published, finding, reading lazily).
- :mod:`~moo_compress.data.release_download`: downloading an official release.
- :mod:`~moo_compress.data.release_generation`: generating a release in the CIFAR-C layout.
- :mod:`~moo_compress.data.corruption_cache`: generated corrupted images cached for evaluation.
- :mod:`~moo_compress.data.corrupted_loading`: :func:`load_corrupted`, what evaluation uses.
- :mod:`~moo_compress.data.corrupted_set`: :class:`CorruptedSet`, what it returns.

New code imports from those modules; this one keeps older imports working.
"""

from __future__ import annotations

from moo_compress.data.corrupted_loading import load_corrupted
from moo_compress.data.corrupted_set import CorruptedSet
from moo_compress.data.release_download import download_release
from moo_compress.data.release_generation import generate_release
from moo_compress.data.releases import MANIFEST, RELEASES, CorruptionRelease, ReleaseInfo, find_release, open_release

__all__ = [
    "CorruptedSet",
    "ReleaseInfo",
    "RELEASES",
    "MANIFEST",
    "CorruptionRelease",
    "open_release",
    "find_release",
    "download_release",
    "generate_release",
    "load_corrupted",
]
