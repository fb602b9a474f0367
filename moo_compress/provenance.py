"""What produced a number: package versions and a fingerprint of the source code that computes it.

Cached results are keyed by these (see :meth:`moo_compress.search.candidate.EvaluationSpec.context`),
so a changed default, tolerance or algorithm in the code that produces the numbers can never let an
old result stand for the new behaviour, even when nobody remembered to bump a version by hand.
"""

from __future__ import annotations

import functools
import hashlib
import platform
from pathlib import Path

from moo_compress import __version__

__all__ = ["NUMERIC_SOURCES", "source_fingerprint", "numeric_versions"]

_PACKAGE = Path(__file__).resolve().parent

#: The package's modules whose code determines an evaluation's numbers (relative to the package):
#: models, data loading and corruptions, compression and calibration, evaluation and its metrics, and the
#: evaluation of one candidate.
NUMERIC_SOURCES = ("models", "data", "compress", "evaluation", "search/candidate.py")


def _files(root: Path, sources: tuple[str, ...]) -> list[Path]:
    files: list[Path] = []
    for source in sources:
        path = root / source
        files += sorted(path.rglob("*.py")) if path.is_dir() else [path]
    return files


def source_fingerprint(sources: tuple[str, ...] = NUMERIC_SOURCES, root: str | None = None) -> str:
    """SHA-256 prefix (16 hex digits) of the source files under ``sources``, with their relative paths.

    Args:
        sources: Files or folders relative to ``root``.
        root: Where ``sources`` live; default the installed package (then computed once per process).

    Raises:
        FileNotFoundError: if a listed file is missing.
    """
    if root is None:
        return _package_fingerprint(tuple(sources))
    return _fingerprint(Path(root), tuple(sources))


@functools.lru_cache(maxsize=4)
def _package_fingerprint(sources: tuple[str, ...]) -> str:
    return _fingerprint(_PACKAGE, sources)


def _fingerprint(base: Path, sources: tuple[str, ...]) -> str:
    digest = hashlib.sha256()
    for file in _files(base, sources):
        digest.update(file.relative_to(base).as_posix().encode() + b"\0")
        digest.update(file.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def numeric_versions() -> dict[str, str]:
    """Versions of Python and of the libraries whose code computes the numbers."""
    import numpy
    import torch

    return {"python": platform.python_version(), "moo_compress": __version__, "torch": str(torch.__version__),
            "numpy": numpy.__version__}
