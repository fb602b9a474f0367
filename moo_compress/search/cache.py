"""A content-addressed, append-only store of candidate evaluations.

Each result is one JSON file ``<root>/evaluations/<context>/<plan>.json``, where ``context`` hashes
everything that determines the numbers besides the plan (checkpoint SHA-256, clean and corrupted
image-set fingerprints, fidelity, precision, calibration) and ``plan`` is the plan's canonical-JSON
hash. Files are written atomically (temporary file + rename) the moment a result is known, so:

- an interrupted run loses nothing already evaluated, and a re-run resumes from the store;
- runs (and parallel workers) that meet the same candidate share the work;
- concurrent writers never leave a partial entry: the last complete write wins, and both writes hold
  the same numbers because evaluation is deterministic.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from moo_compress.fileio import atomic_write_json

__all__ = ["EvaluationCache"]


class EvaluationCache:
    """Evaluation records addressed by ``(context_key, plan_key)``.

    Args:
        root: Cache root (``--cache-dir``); records live under ``root/evaluations``.
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).expanduser() / "evaluations"

    def path(self, context_key: str, plan_key: str) -> Path:
        """Where the record of ``plan_key`` under ``context_key`` lives."""
        return self.root / context_key / f"{plan_key}.json"

    def get(self, context_key: str, plan_key: str) -> dict[str, Any] | None:
        """The stored record, or None. An unreadable file (hand-edited, disk full) counts as missing."""
        path = self.path(context_key, plan_key)
        try:
            return json.loads(path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, json.JSONDecodeError) as exc:
            warnings.warn(f"ignoring unreadable cache entry {path}: {exc}", RuntimeWarning, stacklevel=2)
            return None

    def put(self, context_key: str, plan_key: str, record: Mapping[str, Any]) -> Path:
        """Stores ``record`` atomically and returns its path."""
        path = self.path(context_key, plan_key)
        atomic_write_json(path, dict(record))
        return path

    def records(self, context_key: str) -> Iterator[dict[str, Any]]:
        """Every readable record stored under ``context_key``."""
        folder = self.root / context_key
        if not folder.is_dir():
            return
        for file in sorted(folder.glob("*.json")):
            record = self.get(context_key, file.stem)
            if record is not None:
                yield record
