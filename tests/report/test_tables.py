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
from moo_compress.report.tables import LATENCY_COLUMNS, format_ms, short_label
from tests.report.conftest import CORRUPTIONS, MAX_LATENCY_MS, write_run


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


def test_pareto_table_has_latency_columns_when_measured(latency_run: Path) -> None:
    run = load_run(latency_run)
    table = pareto_table(run)
    expected = {"latency, batch 1 (ms)": "final/latency_ms", "latency IQR low (ms)": "final/latency_low_ms",
                "latency IQR high (ms)": "final/latency_high_ms",
                "speed-up vs. reference (x)": "final/latency_speedup",
                "speed-up IQR low (x)": "final/latency_speedup_low",
                "speed-up IQR high (x)": "final/latency_speedup_high",
                "latency, batch 64 (ms)": "final/latency_batch_ms",
                "speed-up vs. reference, batch 64 (x)": "final/latency_batch_speedup"}
    for title, column in expected.items():
        np.testing.assert_allclose(table[title], run.pareto[column], rtol=1e-6)  # not rounded away
    assert set(table.attrs["formats"]) == set(expected)
    assert table.attrs["formats"]["latency, batch 1 (ms)"](0.49634) == "0.496"
    assert table.attrs["formats"]["speed-up vs. reference (x)"](1.6509) == "1.65"


def test_recommendations_table_has_the_picks_latency(latency_run: Path) -> None:
    run = load_run(latency_run)
    table = recommendations_table(run)
    for i, rec in enumerate(run.recommendations):
        ms = table.loc[i, "latency, batch 1 (ms)"]
        if rec.get("row") is None:
            assert np.isnan(ms)
        else:  # knees.json's number, and the same plan's row of pareto.csv
            assert ms == pytest.approx(rec["latency"]["ms"])
            assert ms == pytest.approx(run.pareto.loc[rec["row"], "latency_ms"], rel=1e-5)
            assert table.loc[i, "latency, batch 64 (ms)"] == pytest.approx(rec["latency"]["batch_ms"])
            assert table.loc[i, "speed-up IQR low (x)"] == pytest.approx(rec["latency"]["speedup_low"])
    assert table.columns[-1] == "rationale"


def test_tables_without_latency_have_no_latency_columns(synthetic_run: Path) -> None:
    run = load_run(synthetic_run)
    for table in (pareto_table(run), recommendations_table(run)):
        assert not [c for c in table.columns if "latency" in c or "speed-up" in c]
        assert "formats" not in table.attrs


def test_constraint_only_run_still_shows_latency_columns(tmp_path: Path) -> None:
    table = pareto_table(load_run(write_run(tmp_path / "r", latency="constraint")))
    assert (table["latency, batch 1 (ms)"] <= MAX_LATENCY_MS).all()  # infeasible plans are not on the front


@pytest.mark.parametrize(("value", "text"), [(0.49634, "0.496"), (1.0245, "1.02"), (57.969, "58.0"), (1234.5, "1234"),
                                             (0.0, "0"), (None, "n/a"), (float("nan"), "n/a")])
def test_format_ms_keeps_three_significant_digits(value: float | None, text: str) -> None:
    assert format_ms(value) == text


def test_latency_columns_are_the_ones_the_search_writes() -> None:
    """The report does not import the search; this keeps its copy of the column names in step."""
    from moo_compress.search.latency import LATENCY_FIELDS

    assert LATENCY_COLUMNS == LATENCY_FIELDS
