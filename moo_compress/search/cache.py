"""A content-addressed, append-only store of candidate evaluations.

Each result is one JSON file ``<root>/evaluations/<context>/<plan>.json``, where ``context`` hashes
everything that determines the numbers besides the plan (checkpoint SHA-256, clean and corrupted
image-set fingerprints, fidelity, precision, calibration, package and library versions, a fingerprint
of the source code that computes the numbers, device type; written out in ``<context>/context.json``)
and ``plan`` hashes the fully resolved plan (every field, defaults included).
``<context>/weights/<fingerprint>.json`` names the plan that first produced a given compressed
model, so a plan that produces the same model is recognised before it is evaluated. Files are written
atomically (temporary file + rename) the moment a result is known, so:

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

__all__ = ["EvaluationCache", "CONTEXT_FILE"]

#: File beside a context's records that holds what the context key hashes.
CONTEXT_FILE = "context.json"


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

    def put_context(self, context_key: str, context: Mapping[str, Any]) -> Path:
        """Writes what ``context_key`` hashes beside its records (once), so two keys can be compared."""
        path = self.root / context_key / CONTEXT_FILE
        if not path.is_file():
            atomic_write_json(path, dict(context))
        return path

    def context(self, context_key: str) -> dict[str, Any] | None:
        """What ``context_key`` hashes (checkpoint, data, versions, source fingerprint...), if recorded."""
        try:
            return json.loads((self.root / context_key / CONTEXT_FILE).read_text())
        except (OSError, json.JSONDecodeError):
            return None

    def find_weights(self, context_key: str, weights_fingerprint: str) -> dict[str, Any] | None:
        """The record of an earlier plan under ``context_key`` whose compressed model was identical."""
        try:
            plan_key = json.loads(self._weights_path(context_key, weights_fingerprint).read_text())["plan_key"]
        except (OSError, json.JSONDecodeError, KeyError):
            return None
        return self.get(context_key, plan_key)

    def put_weights(self, context_key: str, weights_fingerprint: str, plan_key: str) -> None:
        """Remembers that ``plan_key`` produced the model ``weights_fingerprint`` (first writer wins)."""
        path = self._weights_path(context_key, weights_fingerprint)
        if not path.is_file():
            atomic_write_json(path, {"plan_key": plan_key})

    def _weights_path(self, context_key: str, weights_fingerprint: str) -> Path:
        return self.root / context_key / "weights" / f"{weights_fingerprint}.json"

    def records(self, context_key: str) -> Iterator[dict[str, Any]]:
        """Every readable record stored under ``context_key``."""
        folder = self.root / context_key
        if not folder.is_dir():
            return
        for file in sorted(folder.glob("*.json")):
            if file.name == CONTEXT_FILE:
                continue
            record = self.get(context_key, file.stem)
            if record is not None:
                yield record
