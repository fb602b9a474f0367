"""Held-out robustness: the corruptions a search never saw, measured for the reported plans, and the
rank-reversal flag."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from moo_compress.data.corruptions import ALL_CORRUPTIONS, BENCHMARK_CORRUPTIONS, EXTRA_CORRUPTIONS
from moo_compress.data.corruptions_bar import BAR_CORRUPTIONS
from moo_compress.report import render_run
from moo_compress.search.final import held_out_corruptions, rank_reversals
from moo_compress.search.run import run_search
from moo_compress.search.settings import SearchSettings


def test_the_held_out_suites_are_what_the_space_does_not_optimise() -> None:
    assert held_out_corruptions(BENCHMARK_CORRUPTIONS, (32, 32)) == {"extra": EXTRA_CORRUPTIONS,
                                                                     "bar": tuple(BAR_CORRUPTIONS)}
    assert held_out_corruptions(ALL_CORRUPTIONS, (224, 224)) == {}  # all 19 optimised: nothing held out
    assert held_out_corruptions(("gaussian_noise", "speckle_noise"), (64, 64)) == {
        "extra": tuple(c for c in EXTRA_CORRUPTIONS if c != "speckle_noise")}


def test_a_reversal_needs_confidence_on_both_sides() -> None:
    rng = np.random.default_rng(0)
    n = 2000
    strong = rng.random(n) < 0.8
    weak = rng.random(n) < 0.5
    # "a" is confidently better than "b" on the searched corruptions and confidently worse held out
    outcomes = {"a": (strong.astype(float), weak.astype(float)), "b": (weak.astype(float), strong.astype(float)),
                "c": (strong.astype(float), strong.astype(float))}
    flags = rank_reversals(outcomes)
    assert flags == {"a": ["b"]}  # "c" beats "b" on both: no reversal; "b" is never ahead on the searched set
    noisy = {"a": (strong[:20].astype(float), weak[:20].astype(float)),
             "b": (weak[:20].astype(float), strong[:20].astype(float))}
    assert rank_reversals({k: (v[0][:8], v[1][:8]) for k, v in noisy.items()}) == {}  # within noise: a tie


@pytest.mark.slow
def test_every_run_carries_held_out_robustness_for_its_recommendations(tiny_search: SearchSettings) -> None:
    result = run_search(tiny_search, log=lambda _: None)
    front = result.pareto
    rows = sorted({r["row"] for r in result.recommendations if r.get("row") is not None})
    measured = front["heldout/mca_delta"].notna()
    assert sorted(np.flatnonzero(measured)) == rows and rows
    assert (front.loc[measured, "heldout/mca_delta_low"] <= front.loc[measured, "heldout/mca_delta"]).all()
    info = result.baseline["heldout"]
    assert set(info["suites"]) == {"extra", "bar"} and len(info["suites"]["bar"]) == 10
    assert all("heldout" in r for r in result.recommendations if r.get("row") is not None)
    out = Path(result.out_dir)
    render_run(out)
    summary = (out / "summary.md").read_text()
    assert "## Held-out robustness" in summary and "pinch_and_twirl" in summary
    assert (out / "heldout.png").is_file()
    knees = json.loads((out / "knees.json").read_text())
    assert knees["baseline"]["heldout"]["n_corrupted"] == info["n_corrupted"]
    pareto = pd.read_csv(out / "pareto.csv")
    assert "heldout/mean_corruption_accuracy" in pareto


@pytest.mark.slow
def test_held_out_can_cover_the_front_or_be_switched_off(tiny_search: SearchSettings) -> None:
    front = run_search(tiny_search.replace(output={"held_out": "front"}), log=lambda _: None).pareto
    assert front["heldout/mca_delta"].notna().all()
    off = run_search(tiny_search.replace(output={"held_out": "off", "out": str(Path(tiny_search.output.out) / "x")}),
                     log=lambda _: None)
    assert "heldout/mca_delta" not in off.pareto and off.baseline["heldout"] is None
