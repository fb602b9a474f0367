"""The typed evaluation record: its JSON form, windows merged and cut, per-image outcomes."""

from __future__ import annotations

import numpy as np
import pytest

from moo_compress.compress import CompressionPlan, PruneConfig
from moo_compress.errors import ConfigError
from moo_compress.evaluation.stats import pack_bits
from moo_compress.search.evaluation_record import EvaluationRecord
from moo_compress.search.objectives import record_metrics

CORR, SEV = ("gaussian_noise", "fog"), (1, 3)


def _worker_dict(clean: np.ndarray, cells: np.ndarray, **extra: object) -> dict:
    """A record as a worker writes it to the cache (JSON keys), outcomes ``cells[image, cell]``."""
    plan = CompressionPlan(prune=PruneConfig(sparsity=0.5))
    keys = [f"{c}/{s}" for c in CORR for s in SEV]
    return {"status": "ok", "error": None, "plan": plan.to_dict(), "plan_resolved": plan.to_dict(defaults=True),
            "plan_key": plan.key(), "label": plan.label(), "weights_fingerprint": "abc", "compression_ratio": 2.0,
            "clean_accuracy": float(clean.mean()),
            "corruption_accuracy": {k: float(cells[:, i].mean()) for i, k in enumerate(keys)},
            "clean_correct": pack_bits(clean), "corruption_correct": {k: pack_bits(cells[:, i]) for i, k in
                                                                      enumerate(keys)},
            "n_clean": int(clean.size), "n_corrupted": int(cells.size), "seconds": 1.5, "compress_seconds": 0.5,
            "window": [0, len(cells)], "precision": "fp32", "context_key": "ctx", "latency_ms": 2.0, **extra}


def _outcomes(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.random(2 * n) < 0.8, rng.random((n, len(CORR) * len(SEV))) < 0.6


def test_the_json_form_round_trips_and_unknown_keys_are_kept_as_provenance() -> None:
    data = _worker_dict(*_outcomes(20))
    record = EvaluationRecord.from_dict(data)
    assert record.ok and record.window == (0, 20) and record.latency == {"latency_ms": 2.0}
    assert record.provenance == {"plan_resolved": data["plan_resolved"], "precision": "fp32", "context_key": "ctx"}
    again = record.to_dict()
    assert {k: again[k] for k in data} == data  # every key the worker wrote, with its value
    assert EvaluationRecord.coerce(record) is record and EvaluationRecord.coerce(data) == record


def test_outcomes_follow_the_requested_corruption_and_severity_order() -> None:
    clean, cells = _outcomes(30)
    record = EvaluationRecord.from_dict(_worker_dict(clean, cells))
    out = record.outcomes(("fog", "gaussian_noise"), (3, 1))
    # cells column order in the record: gaussian_noise/1, gaussian_noise/3, fog/1, fog/3
    np.testing.assert_array_equal(out.cells[:, 0, 0], cells[:, 3])
    np.testing.assert_array_equal(out.cells[:, 1, 1], cells[:, 0])
    np.testing.assert_array_equal(out.clean, clean)
    with pytest.raises(ConfigError, match="no per-image outcomes"):
        EvaluationRecord("k", "P50", {}).outcomes(CORR, SEV)


def test_windows_merge_into_the_whole_and_a_prefix_cuts_back_to_a_window() -> None:
    clean, cells = _outcomes(40, seed=1)  # two clean images per corrupted image
    first = _worker_dict(clean[:20], cells[:10], seconds=1.0)
    second = _worker_dict(clean[20:], cells[10:], seconds=2.0, cache_hit=True)
    merged = EvaluationRecord.merge([EvaluationRecord.from_dict(first), EvaluationRecord.from_dict(second)])
    whole = EvaluationRecord.from_dict(_worker_dict(clean, cells))
    assert (merged.clean_correct, merged.corruption_correct) == (whole.clean_correct, whole.corruption_correct)
    assert merged.clean_accuracy == pytest.approx(clean.mean()) and merged.images_per_cell == 40
    assert merged.seconds == 3.0 and merged.windows == 2 and not merged.cache_hit
    cut = merged.prefix(10)
    assert cut.images_per_cell == 10 and cut.n_clean == 20 and cut.clean_correct == first["clean_correct"]
    assert cut.corruption_correct == first["corruption_correct"]
    assert record_metrics(cut, cut, CORR, SEV)["clean_delta"] == 0.0
    with pytest.raises(ValueError, match="fewer than 80"):
        merged.prefix(80)


def test_a_failed_window_fails_the_merged_record_and_keeps_its_traceback() -> None:
    clean, cells = _outcomes(10)
    ok = EvaluationRecord.from_dict(_worker_dict(clean, cells))
    bad = ok.replace(status="failed", error="RuntimeError: boom", provenance={"traceback": "Traceback ..."})
    merged = EvaluationRecord.merge([ok, bad])
    assert not merged.ok and merged.error == "RuntimeError: boom"
    assert merged.provenance["traceback"] == "Traceback ..."
    lost = EvaluationRecord.failed(CompressionPlan(), "worker lost twice")
    assert not lost.ok and lost.label == CompressionPlan().label() and lost.to_dict()["status"] == "failed"
