"""Picking plans of a run and re-evaluating them through the cache (``moo_compress.reevaluate``, used
by ``python -m moo_compress.evaluate --run`` and by the notebook)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from moo_compress import evaluate
from moo_compress.errors import ConfigError
from moo_compress.reevaluate import images_option, reevaluate_run, select_plans
from moo_compress.report import load_run
from tests.report.conftest import write_run


def test_select_plans_by_recommendation_row_knee_and_pareto(synthetic_run: Path) -> None:
    run = load_run(synthetic_run)
    knee = next(r for r in run.recommendations if r["method"] == "nbi_knee")
    (name, plan), = select_plans(run, ["nbi_knee"])
    assert name == "nbi_knee" and plan.key() == knee["plan_key"]
    assert [n for n, _ in select_plans(run, [0, "1"])] == ["row 0", "row 1"]
    # knee and closest_to_ideal pick one plan: listed once; the row of an already listed plan adds nothing
    names = [n for n, _ in select_plans(run, ["knee", knee["row"]])]
    assert names == ["nbi_knee", "most_robust_min_ratio", "smallest_within_drop"]
    assert len(select_plans(run, ["pareto"])) == len(run.pareto)


def test_select_plans_errors_name_the_choices(synthetic_run: Path, tmp_path: Path) -> None:
    run = load_run(synthetic_run)
    with pytest.raises(ConfigError, match="use knee, pareto, nbi_knee, .* or a row number"):
        select_plans(run, ["best"])
    with pytest.raises(ConfigError, match=f"rows 0-{len(run.pareto) - 1}"):
        select_plans(run, [len(run.pareto)])
    with pytest.raises(ConfigError, match="no recommendation"):
        select_plans(load_run(write_run(tmp_path / "empty", empty_front=True)), ["knee"])


def test_images_option() -> None:
    assert images_option("all") == "all" and images_option("30") == 30 and images_option(5) == 5
    for bad in ("many", 0, None):
        with pytest.raises(ConfigError, match="images"):
            images_option(bad)


@pytest.mark.slow
def test_reevaluate_run_reads_the_cache_and_exports(tiny_run: Path, tmp_path: Path) -> None:
    run = load_run(tiny_run)
    n_final = run.info["final"]["n_per_class"] * 10  # the run's final fidelity: every plan is cached
    # the first recommendation that found a plan (which ones do depends on the tiny run's front)
    method = next(r["method"] for r in run.recommendations if r.get("plan"))
    frame = reevaluate_run(tiny_run, [method, 0], images=n_final, export_dir=tmp_path / "exported")
    assert isinstance(frame, pd.DataFrame) and frame["name"].iloc[0] == "baseline"
    assert frame["cached"].all() and (frame["status"] == "ok").all()
    knee = next(r for r in run.recommendations if r["method"] == method)
    row = frame[frame["name"] == method].iloc[0]
    assert row["clean_accuracy"] == pytest.approx(knee["clean_accuracy"])
    assert row["compression_ratio"] == pytest.approx(knee["compression_ratio"])
    assert {"family/noise", "acc/gaussian_noise", "mce"} <= set(frame.columns)
    exported = frame["export"].dropna()
    assert len(exported) == len(frame) - 1 and all(Path(p).is_file() for p in exported)
    assert "images per class" in frame.attrs["fidelity"]


@pytest.mark.slow
def test_evaluate_cli_selects_a_recommendation(tiny_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    method = next(r["method"] for r in load_run(tiny_run).recommendations if r.get("plan"))
    assert evaluate.main(["--run", str(tiny_run), "--select", method, "--images", "30", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "baseline" in out and method in out and "clean %" in out


def test_a_recommendation_without_a_plan_says_so(synthetic_run: Path) -> None:
    with pytest.raises(ConfigError, match="'high_tradeoff' found no plan"):
        select_plans(load_run(synthetic_run), ["high_tradeoff"])
