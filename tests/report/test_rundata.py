"""Reading run folders and choosing which one to open."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

from moo_compress.errors import DataNotFoundError
from moo_compress.report import RUN_ENV, find_latest_run, load_run, resolve_run
from tests.report.conftest import LATENCY_INFO, MAX_LATENCY_MS, write_run


def test_load_run_reads_every_file(synthetic_run: Path) -> None:
    run = load_run(synthetic_run)
    assert run.name == "synthetic" and run.has_final
    assert run.objectives == ["clean_accuracy", "mean_corruption_accuracy", "compression_ratio"]
    assert run.gene_columns == ["gene/sparsity", "gene/clusters", "gene/weight_bits"]
    assert isinstance(run.evaluations["plan"].iloc[0], dict) and run.pareto["pareto"].dtype == bool
    assert run.baseline == run.knees["baseline"]["final"] != run.screening_baseline
    assert len(run.ok) == len(run.evaluations)


def test_run_without_final_uses_screening(tmp_path: Path) -> None:
    run = load_run(write_run(tmp_path / "r", final=False, robustness="mce"))
    assert not run.has_final and run.baseline == run.screening_baseline
    assert run.robustness == "mce"


def test_missing_folder_and_unfinished_run_are_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(DataNotFoundError, match="does not exist"):
        load_run(tmp_path / "nope")
    folder = write_run(tmp_path / "unfinished")
    (folder / "knees.json").unlink()
    with pytest.raises(DataNotFoundError, match="knees.json missing") as info:
        load_run(folder)
    assert "\n" not in str(info.value)


def test_find_latest_run_picks_the_newest_finished(tmp_path: Path) -> None:
    old, new = write_run(tmp_path / "outputs" / "old"), write_run(tmp_path / "outputs" / "new")
    os.utime(old / "knees.json", (1, 1))
    (tmp_path / "outputs" / "partial").mkdir()
    assert find_latest_run(tmp_path / "outputs") == new
    with pytest.raises(DataNotFoundError, match="no finished run"):
        find_latest_run(tmp_path / "empty")


def test_resolve_run_prefers_argument_then_environment_then_outputs(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    latest = write_run(tmp_path / "project" / "outputs" / "latest")
    notebooks = tmp_path / "project" / "notebooks"
    notebooks.mkdir()
    monkeypatch.delenv(RUN_ENV, raising=False)
    assert resolve_run(start=notebooks) == latest  # found in a parent folder, as from notebooks/
    monkeypatch.setenv(RUN_ENV, str(tmp_path / "from-env"))
    assert resolve_run(start=notebooks) == tmp_path / "from-env"
    assert resolve_run(tmp_path / "given", start=notebooks) == tmp_path / "given"
    monkeypatch.delenv(RUN_ENV)
    with pytest.raises(DataNotFoundError, match=RUN_ENV):
        resolve_run(start=tmp_path / "elsewhere")


def test_repr_summarises_the_run(tmp_path: Path) -> None:
    text = repr(load_run(write_run(tmp_path / "r", failed=1, final=False)))
    assert "resnet20 on cifar10, 15 plans evaluated (1 failed)" in text and "screening fidelity only" in text


def test_run_with_latency_objective_reads_how_it_was_measured(latency_run: Path) -> None:
    run = load_run(latency_run)
    assert run.objectives == ["clean_accuracy", "mean_corruption_accuracy", "compression_ratio", "latency_ms"]
    assert run.latency_objective and run.measures_latency
    assert run.latency == LATENCY_INFO
    # the final baseline holds no latency (measured once, not per split): the reference's comes from knees.json
    assert run.baseline["latency_ms"] == LATENCY_INFO["reference_ms"]
    assert run.baseline["latency_low_ms"] == LATENCY_INFO["reference_low_ms"]
    assert run.baseline["clean_accuracy"] == run.knees["baseline"]["final"]["clean_accuracy"]


def test_latency_constraint_alone_is_measured_not_optimised(tmp_path: Path) -> None:
    run = load_run(write_run(tmp_path / "r", latency="constraint"))
    assert run.objectives == ["clean_accuracy", "mean_corruption_accuracy", "compression_ratio"]
    assert run.measures_latency and not run.latency_objective
    assert run.latency_settings["max_latency_ms"] == MAX_LATENCY_MS and run.latency_settings["batch_size"] == 64


def test_run_without_latency_has_none(synthetic_run: Path) -> None:
    run = load_run(synthetic_run)
    assert not run.measures_latency and not run.latency_objective
    assert run.latency is None and run.reference_latency == {} and run.latency_settings == {}
    assert not [k for k in run.baseline if k.startswith("latency")]


def test_latency_without_its_record_falls_back_to_the_space_and_the_screened_reference(latency_run: Path) -> None:
    """Run folders written before ``knees.json`` recorded how latency was measured."""
    knees = json.loads((latency_run / "knees.json").read_text())
    del knees["latency"]
    (latency_run / "knees.json").write_text(json.dumps(knees))
    config = yaml.safe_load((latency_run / "config.yaml").read_text())
    config["run"]["latency"] = None
    (latency_run / "config.yaml").write_text(yaml.safe_dump(config))
    run = load_run(latency_run)
    assert run.latency is None and run.latency_objective and run.measures_latency
    assert run.latency_settings == {"runtime": "onnxruntime", "threads": 1, "rounds": 50, "batch_size": 64,
                                    "objective": True}
    assert run.reference_latency == {"latency_ms": 2.0, "latency_low_ms": 1.9, "latency_high_ms": 2.2,
                                     "latency_batch_ms": 110.0}  # the screening baseline's
