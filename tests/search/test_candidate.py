"""The evaluation of one candidate: cache context (what the key hashes) and recognition of identical models."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from moo_compress.compress import CompressionPlan, PruneConfig
from moo_compress.fileio import sha256_file
from moo_compress.provenance import source_fingerprint
from moo_compress.search import candidate
from moo_compress.search.cache import CONTEXT_FILE, EvaluationCache
from moo_compress.search.candidate import EvaluationSpec, evaluate_and_store
from moo_compress.search.evaluation_record import EvaluationRecord
from moo_compress.search.evaluations import EvaluationLog, evaluation_frame
from moo_compress.search.objectives import Objectives
from tests.search.conftest import tiny_search_settings


@pytest.fixture
def spec(tmp_path: Path) -> EvaluationSpec:
    settings = tiny_search_settings(tmp_path)
    target = settings.target
    return EvaluationSpec(arch="resnet20", dataset="cifar10", weights_path=target.weights,
                          weights_sha256=sha256_file(target.weights), data_root=target.data_root,
                          corruptions=("contrast",), severities=(1,), n_per_class=2, precision="fp32",
                          device="cpu", cache_dir=settings.execution.cache_dir).resolved()


def test_context_hashes_source_versions_and_device(spec: EvaluationSpec, monkeypatch: pytest.MonkeyPatch) -> None:
    context = spec.context()
    assert context["source"] == source_fingerprint() and context["device_type"] == "cpu"
    assert {"moo_compress", "torch", "numpy"} <= set(context["versions"])
    key = spec.context_key()
    monkeypatch.setattr(candidate, "source_fingerprint", lambda: "0" * 16)  # as if the code had changed
    assert spec.context_key() != key
    monkeypatch.undo()
    monkeypatch.setattr(candidate, "numeric_versions", lambda: {**context["versions"], "torch": "9.9"})
    assert spec.context_key() != key
    monkeypatch.undo()
    assert dataclasses.replace(spec, device="auto").context()["device_type"] in ("cuda", "cpu")


def test_source_fingerprint_follows_every_file(tmp_path: Path) -> None:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "a.py").write_text("X = 1\n")
    (tmp_path / "b.py").write_text("Y = 2\n")
    first = source_fingerprint(("pkg", "b.py"), str(tmp_path))
    (tmp_path / "pkg" / "a.py").write_text("X = 2\n")  # a changed default
    second = source_fingerprint(("pkg", "b.py"), str(tmp_path))
    (tmp_path / "pkg" / "c.py").write_text("")  # a new module
    third = source_fingerprint(("pkg", "b.py"), str(tmp_path))
    assert len({first, second, third}) == 3


def test_identical_models_are_recognised_before_evaluation(spec: EvaluationSpec,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    first_plan = CompressionPlan(prune=PruneConfig(0.0))
    twin_plan = CompressionPlan(prune=PruneConfig(0.0, scope="layer"))  # another plan, the same model
    assert first_plan.key() != twin_plan.key()
    first = evaluate_and_store(spec, first_plan.to_dict())
    assert first["status"] == "ok" and first.get("duplicate_of") is None

    def must_not_run(*args: object, **kwargs: object) -> None:
        raise AssertionError("an identical model was evaluated again")

    monkeypatch.setattr(candidate, "Evaluator", must_not_run)
    twin = evaluate_and_store(spec, twin_plan.to_dict())
    assert twin["status"] == "ok" and twin["duplicate_of"] == first["plan_key"]
    assert twin["weights_fingerprint"] == first["weights_fingerprint"]
    for field in candidate.MODEL_FIELDS:
        assert twin[field] == first[field], field
    cache = EvaluationCache(spec.cache_dir)
    assert cache.get(spec.context_key(), twin_plan.key())["duplicate_of"] == first["plan_key"]
    assert cache.context(spec.context_key()) == spec.context()
    assert (cache.root / spec.context_key() / CONTEXT_FILE).is_file()
    assert len(list(cache.records(spec.context_key()))) == 2  # the context file is not a record


def test_duplicates_are_named_and_kept_off_the_front() -> None:
    log = EvaluationLog()
    for key, label, fingerprint in (("a", "P0", "w1"), ("b", "P0l", "w1"), ("c", "P50", "w2")):
        log.add(EvaluationRecord(key, label, {}, weights_fingerprint=fingerprint), 0, {})
    objectives = Objectives(robustness="mean_corruption_accuracy", corruptions=("contrast",), severities=(1,),
                            baseline_accuracy=90.0)
    frame = evaluation_frame(log, objectives, lambda record: None)
    assert frame["duplicate_of"].tolist() == [None, "P0", None]
