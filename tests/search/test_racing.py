"""Racing over nested rungs: windows extend, promotion never repeats work, dominated plans stop early."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from moo_compress.cli.search import build_parser, settings_from_args
from moo_compress.compress import CompressionPlan, PruneConfig
from moo_compress.errors import ConfigError
from moo_compress.evaluation import metrics as mt
from moo_compress.evaluation.stats import pack_bits
from moo_compress.search import FidelitySettings, SearchSettings, TargetSettings, run_search
from moo_compress.search.candidate import load_resources
from moo_compress.search.claims import Outcomes
from moo_compress.search.fidelity import Fidelity
from moo_compress.search.objectives import Objectives
from moo_compress.search.racing import Racer, merge_records, robustness_scores, rung_windows
from moo_compress.search.run import resolve_fidelity, space_spec
from moo_compress.search.space import SearchSpace, load_space
from tests.search.conftest import TINY_SPACE

CORR, SEV = ("gaussian_noise", "fog"), (1, 2)
N = 400


def _plan(sparsity: float) -> CompressionPlan:
    return CompressionPlan(prune=PruneConfig(sparsity=sparsity))


class Table:
    """Per-image outcomes of synthetic plans; serves windows and counts what was asked for."""

    def __init__(self, accuracy: dict[float, float], ratio: dict[float, float], seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        u_clean, u_cells = rng.random(N), rng.random((N, len(CORR) * len(SEV)))
        # shared uniforms: a better plan is right wherever a worse one is (strongly paired outcomes)
        self.outcomes = {s: (u_clean < a, u_cells < a - 0.1) for s, a in accuracy.items()}
        self.ratio = ratio
        self.calls: list[tuple[float, int, int]] = []

    def __call__(self, plans: list[CompressionPlan], start: int, stop: int) -> list[dict[str, Any]]:
        out = []
        for plan in plans:
            s = plan.prune.sparsity if plan.prune is not None else 0.0
            self.calls.append((s, start, stop))
            clean, cells = self.outcomes[s]
            keys = [f"{c}/{v}" for c in CORR for v in SEV]
            out.append({"status": "ok", "plan": plan.to_dict(), "plan_key": plan.key(), "label": plan.label(),
                        "weights_fingerprint": str(s), "compression_ratio": self.ratio[s],
                        "clean_accuracy": float(clean[start:stop].mean()),
                        "corruption_accuracy": {k: float(cells[start:stop, i].mean()) for i, k in enumerate(keys)},
                        "clean_correct": pack_bits(clean[start:stop]),
                        "corruption_correct": {k: pack_bits(cells[start:stop, i]) for i, k in enumerate(keys)},
                        "n_clean": stop - start, "n_corrupted": (stop - start) * len(keys), "seconds": 1.0,
                        "window": [start, stop]})
        return out


def _racer(table: Table, ladder: tuple[int, ...] = (25, 50, 100, 200), **kwargs: Any) -> Racer:
    objectives = Objectives(robustness="mean_corruption_accuracy", corruptions=CORR, severities=SEV,
                            baseline_accuracy=90.0, max_accuracy_drop=kwargs.pop("max_drop", None))
    return Racer(ladder, table, CompressionPlan(), objectives, cells=len(CORR) * len(SEV), **kwargs)


def test_windows_and_merged_records_extend_without_repeating() -> None:
    assert rung_windows((20, 40, 80)) == [(0, 20), (20, 40), (40, 80)]
    table = Table({0.0: 0.9}, {0.0: 1.0})
    chunks = table([CompressionPlan()], 0, 30) + table([CompressionPlan()], 30, 100)
    merged = merge_records(chunks)
    whole = table([CompressionPlan()], 0, 100)[0]
    for key in ("clean_accuracy", "corruption_accuracy", "clean_correct", "corruption_correct", "n_clean",
                "n_corrupted"):
        assert getattr(merged, key) == whole[key], key
    assert merged.images_per_cell == 100 and merged.seconds == 2.0 and merged.windows == 2
    failed = merge_records([chunks[0], {**chunks[1], "status": "failed", "error": "boom"}])
    assert failed.status == "failed" and failed.error == "boom" and not failed.ok


def test_a_confidently_dominated_plan_stops_and_the_front_climbs_every_rung() -> None:
    # 0.5: better and smaller than 0.8 (dominates it); 0.9: the smallest, so never dominated
    table = Table({0.0: 0.95, 0.5: 0.9, 0.8: 0.4, 0.9: 0.2}, {0.0: 1.0, 0.5: 3.0, 0.8: 2.0, 0.9: 8.0})
    racer = _racer(table)
    records = racer([_plan(0.5), _plan(0.8), _plan(0.9)])
    by = {r.label: r for r in records}
    assert by["P80"].images_per_cell == 25 and by["P80"].stopped.startswith("dominated by P50")
    assert by["P50"].images_per_cell == 200 and by["P50"].stopped is None and by["P50"].rung == 3
    assert by["P90"].images_per_cell == 200
    # promotion evaluated each window once per plan, and the bill counts exactly those windows
    asked = [c for c in table.calls if c[0] != 0.0]
    assert len(asked) == len(set(asked)) == 4 + 1 + 4
    cells = len(CORR) * len(SEV)
    assert racer.spent == sum((b - a) * (cells + 1) for _, a, b in asked)
    # seen plans come back as they are, at no cost
    spent = racer.spent
    assert racer([_plan(0.8)])[0] is racer.entries[_plan(0.8).key()].record and racer.spent == spent


def test_confidently_infeasible_plans_stop_and_fixed_mode_measures_everyone_once() -> None:
    table = Table({0.0: 0.95, 0.5: 0.9, 0.8: 0.4}, {0.0: 1.0, 0.5: 3.0, 0.8: 4.0})
    racer = _racer(table, max_drop=10.0)
    record = racer([_plan(0.8)])[0]  # highest ratio, so only the constraint can stop it
    assert record.images_per_cell == 25 and record.stopped.startswith("infeasible")
    fixed = _racer(Table({0.0: 0.95, 0.5: 0.9, 0.8: 0.4}, {0.0: 1.0, 0.5: 3.0, 0.8: 4.0}), ladder=(50,),
                   racing=False)
    assert [r.images_per_cell for r in fixed([_plan(0.5), _plan(0.8)])] == [50, 50]


def test_a_started_race_finishes_past_the_budget_and_extend_reuses_windows() -> None:
    table = Table({0.0: 0.95, 0.5: 0.9, 0.9: 0.2}, {0.0: 1.0, 0.5: 3.0, 0.9: 8.0})
    racer = _racer(table, budget_images=1)
    assert not racer.exhausted
    records = racer([_plan(0.5), _plan(0.9)])  # neither dominates the other: both climb every rung
    assert racer.exhausted and [r.images_per_cell for r in records] == [200, 200]
    racer = _racer(table)
    assert racer.extend([_plan(0.5)], 25)[0].images_per_cell == 25
    before = len(table.calls)
    extended = racer.extend([_plan(0.5)], 100)[0]
    assert [c[1:] for c in table.calls[before:] if c[0] == 0.5] == [(25, 50), (50, 100)]
    whole = table([_plan(0.5)], 0, 100)[0]
    assert extended.clean_correct == whole["clean_correct"] and extended.images_per_cell == 100
    cut = racer.extend([_plan(0.5)], 50)[0]  # fewer images than measured: the prefix
    assert cut.clean_correct == table([_plan(0.5)], 0, 50)[0]["clean_correct"]


def test_robustness_scores_average_to_the_metrics() -> None:
    rng = np.random.default_rng(1)
    ref = Outcomes(rng.random(300) < 0.9, rng.random((300, 2, 2)) < 0.6, CORR, SEV)
    out = Outcomes(rng.random(300) < 0.8, rng.random((300, 2, 2)) < 0.5, CORR, SEV)
    acc = {(c, s): float(out.cells[:, i, j].mean()) for i, c in enumerate(CORR) for j, s in enumerate(SEV)}
    base = {(c, s): float(ref.cells[:, i, j].mean()) for i, c in enumerate(CORR) for j, s in enumerate(SEV)}
    err = {k: 1 - v for k, v in acc.items()}
    base_err = {k: 1 - v for k, v in base.items()}
    assert robustness_scores(out, ref, "mean_corruption_accuracy").mean() == pytest.approx(
        mt.mean_corruption_accuracy(acc, corruptions=CORR, severities=SEV))
    assert -robustness_scores(out, ref, "mce").mean() == pytest.approx(
        mt.mce(err, base_err, corruptions=CORR, severities=SEV))
    assert -robustness_scores(out, ref, "relative_mce").mean() == pytest.approx(mt.relative_mce(
        err, 1 - out.clean.mean(), base_err, 1 - ref.clean.mean(), corruptions=CORR, severities=SEV))


def test_fidelity_options_and_space_block() -> None:
    space = SearchSpace.from_dict({**TINY_SPACE, "fidelity": {"rungs": [10, 20, 30], "confidence": 0.9}})
    assert space.fidelity == Fidelity(rungs=(10, 20, 30), confidence=0.9)
    assert SearchSpace.from_dict(space.to_dict()).fidelity == space.fidelity
    with pytest.raises(ConfigError, match="fidelity.rungs"):
        SearchSpace.from_dict({**TINY_SPACE, "fidelity": {"rungs": [20, 10]}})
    with pytest.raises(ConfigError, match="fidelity.speed"):
        SearchSpace.from_dict({**TINY_SPACE, "fidelity": {"speed": 2}})
    base = SearchSettings(TargetSettings("resnet20"))
    assert resolve_fidelity(base, space).ladder == (10, 20, 30)
    assert resolve_fidelity(base.replace(fidelity={"eval_images": 50}), space).ladder == (50,)
    assert resolve_fidelity(base.replace(fidelity={"rungs": (5, 15)}), space).ladder == (5, 15)
    with pytest.raises(ConfigError, match="--eval-images sets a fixed fidelity"):
        FidelitySettings(mode="racing", eval_images=40)
    parse = lambda *a: settings_from_args(build_parser().parse_args(["--arch", "resnet20", *a]))  # noqa: E731
    assert parse("--budget", "250000").algorithm.budget_images == 250000
    budget = parse("--budget", "25m").algorithm
    assert budget.time_budget == 1500 and budget.budget_images is None
    assert parse("--rungs", "10,20").fidelity.rungs == (10, 20)
    with pytest.raises(SystemExit):
        parse("--budget", "lots")
    assert load_space("vgg19").fidelity.mode == "racing"


def test_windows_of_the_fixed_order_nest(tiny_search: SearchSettings) -> None:
    space = load_space(tiny_search.target.space)
    spec = space_spec(tiny_search.resolved(), space, None)
    small = load_resources(spec.with_window(0, 10))
    large = load_resources(spec.with_window(0, 20))
    rest = load_resources(spec.with_window(10, 20))
    assert np.array_equal(large.clean.images[:10], small.clean.images)
    assert np.array_equal(large.clean.images[10:], rest.clean.images)
    assert np.bincount(small.clean.labels, minlength=10).tolist() == [1] * 10  # class-interleaved prefix
    with pytest.raises(ConfigError, match="does not fit"):
        load_resources(spec.with_window(0, 31))
    # clean_multiple 2: clean images [2a, 2b) of the same order; the joined windows start with the same images
    double = [load_resources(dataclasses.replace(spec.with_window(a, b), clean_multiple=2))
              for a, b in ((0, 5), (5, 10))]
    joined = np.concatenate([d.clean.images for d in double])
    assert len(joined) == 20 and np.array_equal(joined, large.clean.images)
    assert np.array_equal(double[0].corrupted.labels, small.clean.labels[:5])
    with pytest.raises(ConfigError, match="clean_multiple"):
        load_resources(dataclasses.replace(spec.with_window(0, 20), clean_multiple=2))


def test_a_kept_model_is_loaded_instead_of_compressed_again(tiny_search: SearchSettings) -> None:
    from moo_compress.search.candidate import discard_models, evaluate_plan, model_path

    space = load_space(tiny_search.target.space)
    spec = dataclasses.replace(space_spec(tiny_search.resolved(), space, None).with_window(0, 10), keep_models=True)
    spec = spec.resolved()
    plan = CompressionPlan(prune=PruneConfig(sparsity=0.5), recovery=space.recovery)
    first = evaluate_plan(spec, plan)
    path = model_path(spec, plan.key())
    assert path is not None and path.is_file()
    later = dataclasses.replace(spec.with_window(10, 20), keep_models=True).resolved()
    assert model_path(later, plan.key()) == path  # one model for every window of the plan
    stamp = path.stat().st_mtime_ns
    second = evaluate_plan(later, plan)
    assert path.stat().st_mtime_ns == stamp and second["weights_fingerprint"] == first["weights_fingerprint"]
    discard_models(spec, [plan.key()])
    assert not path.exists()


@pytest.mark.slow
def test_racing_search_with_an_image_budget_is_the_same_in_every_execution_mode(tiny_search: SearchSettings,
                                                                               tmp_path: Path) -> None:
    settings = tiny_search.replace(fidelity={"eval_images": None, "rungs": (10, 20, 30), "select_images": None},
                                   algorithm={"budget_images": 3000, "generations": None})
    runs = []
    for workers in (1, 2):
        changed = settings.replace(execution={"workers": workers}, output={"out": str(tmp_path / f"w{workers}")})
        result = run_search(changed, log=lambda _: None)
        runs.append(result)
    a, b = runs
    assert a.history["images"].iloc[-1] >= 3000 and a.history["images"].iloc[-2] < 3000
    assert a.history["images"].tolist() == b.history["images"].tolist()
    assert a.pareto["plan_key"].tolist() == b.pareto["plan_key"].tolist()
    evaluations = pd.read_csv(tmp_path / "w1" / "evaluations.csv")
    assert {"rung", "images_per_cell", "stopped"} <= set(evaluations.columns)
    assert set(evaluations["images_per_cell"]) <= {10, 20, 30}
    history = pd.read_csv(tmp_path / "w1" / "history.csv")
    assert history["images_new"].sum() == history["images"].iloc[-1]
    # the compressed models kept between windows were used, and are gone once the search ends
    assert not list((Path(settings.execution.cache_dir) / "models").rglob("*.pt"))
