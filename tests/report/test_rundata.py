"""Reading run folders and choosing which one to open."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from moo_compress.errors import DataNotFoundError
from moo_compress.report import RUN_ENV, find_latest_run, load_run, resolve_run
from tests.report.conftest import write_run


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
