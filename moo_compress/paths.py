"""Where the package looks for data, weights and caches (environment variables and defaults)."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = [
    "DATA_ENV",
    "WEIGHTS_ENV",
    "CACHE_ENV",
    "cache_dir",
    "data_dir",
    "weights_dir",
]

DATA_ENV = "MOO_COMPRESS_DATA"
WEIGHTS_ENV = "MOO_COMPRESS_WEIGHTS"
CACHE_ENV = "MOO_COMPRESS_CACHE"


def _default_root() -> Path:
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "moo_compress"


def cache_dir(override: str | os.PathLike[str] | None = None) -> Path:
    """The cache root: ``override``, else ``$MOO_COMPRESS_CACHE``, else ``~/.cache/moo_compress``."""
    if override is not None:
        return Path(override).expanduser()
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else _default_root()


def data_dir() -> Path | None:
    """The folder of datasets named by ``$MOO_COMPRESS_DATA``, or None when unset."""
    env = os.environ.get(DATA_ENV)
    return Path(env).expanduser() if env else None


def weights_dir(override: str | os.PathLike[str] | None = None) -> Path:
    """The weights folder: ``override``, else ``$MOO_COMPRESS_WEIGHTS``, else ``~/.cache/moo_compress/weights``."""
    if override is not None:
        return Path(override).expanduser()
    env = os.environ.get(WEIGHTS_ENV)
    return Path(env).expanduser() if env else _default_root() / "weights"
