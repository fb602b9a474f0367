"""The evaluation cache: atomic records, missing and corrupt entries, concurrent writers."""

from __future__ import annotations

import json
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest

from moo_compress.search.cache import EvaluationCache


def test_put_then_get_round_trips(tmp_path: Path) -> None:
    cache = EvaluationCache(tmp_path)
    assert cache.get("ctx", "plan") is None
    cache.put("ctx", "plan", {"clean_accuracy": 0.9, "status": "ok"})
    assert cache.get("ctx", "plan") == {"clean_accuracy": 0.9, "status": "ok"}
    assert cache.get("other", "plan") is None
    assert [r["status"] for r in cache.records("ctx")] == ["ok"]
    assert not list(cache.path("ctx", "plan").parent.glob(".*.tmp"))  # no temporary file left behind


def test_unreadable_entry_counts_as_missing(tmp_path: Path) -> None:
    cache = EvaluationCache(tmp_path)
    path = cache.put("ctx", "plan", {"a": 1})
    path.write_text('{"a": 1')  # truncated by hand
    with pytest.warns(RuntimeWarning, match="unreadable cache entry"):
        assert cache.get("ctx", "plan") is None


def _write_many(args: tuple[str, int]) -> None:
    root, worker = args
    cache = EvaluationCache(root)
    for i in range(50):
        cache.put("ctx", f"plan{i % 10}", {"worker": worker, "i": i, "payload": "x" * 2000})


def test_concurrent_writers_never_leave_partial_entries(tmp_path: Path) -> None:
    with ProcessPoolExecutor(max_workers=2) as pool:
        list(pool.map(_write_many, [(str(tmp_path), w) for w in range(4)]))
    cache = EvaluationCache(tmp_path)
    files = sorted(cache.root.joinpath("ctx").iterdir())
    assert [f.name for f in files] == sorted(f"plan{i}.json" for i in range(10))
    for f in files:
        record = json.loads(f.read_text())  # every file is complete JSON
        assert len(record["payload"]) == 2000
