"""Tables: the front at its best fidelity, recommendations, accuracy per corruption."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from moo_compress.errors import ConfigError
from moo_compress.report import (
    corruption_accuracy,
    fidelity_text,
    front_metrics,
    load_run,
    pareto_table,
    recommendations_table,
)
from moo_compress.report.tables import short_label
from tests.report.conftest import CORRUPTIONS, write_run


def test_front_metrics_use_final_values_when_re_evaluated(synthetic_run: Path) -> None:
    run = load_run(synthetic_run)
    front = front_metrics(run)
    assert front["row"].tolist() == list(range(len(run.pareto)))
    np.testing.assert_allclose(front["clean_accuracy"], run.pareto["final/clean_accuracy"])
    np.testing.assert_allclose(front["family/noise"], run.pareto["final/family/noise"])
    assert fidelity_text(run) == "final fidelity, 10 images per class"
    assert fidelity_text(run, "screening") == "screening fidelity, 2 images per class"
    with pytest.raises(ConfigError, match="which must be"):
        fidelity_text(run, "full")


def test_front_metrics_keep_screening_values_without_final(tmp_path: Path) -> None:
    run = load_run(write_run(tmp_path / "r", final=False))
    np.testing.assert_allclose(front_metrics(run)["clean_accuracy"], run.pareto["clean_accuracy"])
    assert fidelity_text(run).startswith("screening fidelity")


def test_corruption_accuracy_per_family_and_per_corruption(synthetic_run: Path) -> None:
    run = load_run(synthetic_run)
    families, base = corruption_accuracy(run, by="family")
    assert list(families.columns) == ["noise", "blur", "weather", "digital"]
    assert families.index.tolist() == list(range(len(run.pareto)))
    assert base["noise"] == pytest.approx(run.knees["baseline"]["final"]["family/noise"])
    corruptions, _ = corruption_accuracy(run, by="corruption")
    assert list(corruptions.columns) == list(CORRUPTIONS)  # the run's order
    with pytest.raises(ConfigError, match="by must be"):
        corruption_accuracy(run, by="severity")


def test_pareto_table_marks_recommendations_and_deltas(synthetic_run: Path) -> None:
    run = load_run(synthetic_run)
    table = pareto_table(run)
    assert len(table) == len(run.pareto)
    assert {"#", "plan", "recommended as", "sparsity", "clean acc. (%)", "Δ clean acc. (points)",
            "mean corr. acc. (%)", "ratio (x)"} <= set(table.columns)
    knee_row = next(r["row"] for r in run.recommendations if r["method"] == "nbi_knee")
    assert table.loc[knee_row, "recommended as"] == "knee, closest to ideal"  # two methods, one plan
    expected = run.pareto["final/clean_accuracy"] - run.baseline["clean_accuracy"]
    np.testing.assert_allclose(table["Δ clean acc. (points)"], expected.round(2))


def test_recommendations_table_lists_every_method(synthetic_run: Path) -> None:
    run = load_run(synthetic_run)
    table = recommendations_table(run)
    assert table["method"].tolist() == [r["method"] for r in run.recommendations]
    assert table["#"].isna().sum() == 1  # the method that found no plan


def test_empty_front_gives_empty_tables(tmp_path: Path) -> None:
    run = load_run(write_run(tmp_path / "r", empty_front=True))
    assert pareto_table(run).empty and recommendations_table(run).empty
    assert corruption_accuracy(run)[0].empty


def test_short_label_shrinks_long_per_group_labels() -> None:
    assert short_label("P50-C16-Q8", 3) == "#3 P50-C16-Q8"
    assert short_label("G(stem:none,layer1:P50-C16-Q8,layer2:Q4)", 3) == "#3"
