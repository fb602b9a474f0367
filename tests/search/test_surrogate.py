"""Surrogate screening of offspring: settings, the choice it makes on a known landscape, the budget cut."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from moo_compress.compress import CompressionPlan
from moo_compress.errors import ConfigError
from moo_compress.search import SearchSettings, run_search
from moo_compress.search.objectives import Objectives
from moo_compress.search.racing import Racer
from moo_compress.search.space import SearchSpace, load_space
from moo_compress.search.surrogate import Surrogate, choose_offspring
from tests.search.conftest import TINY_SPACE


def _landscape(X: np.ndarray) -> np.ndarray:
    """Two minimised objectives traded off by gene 0; gene 1 only makes both worse."""
    x0, x1 = X[:, 0] / 9.0, X[:, 1] / 9.0
    return np.column_stack([x0 + 0.5 * x1, 1.0 - x0 + 0.5 * x1])


def test_settings_parse_validate_and_round_trip() -> None:
    assert Surrogate.parse(None) == Surrogate() and Surrogate().enabled
    assert not Surrogate.parse("off").enabled and not Surrogate.parse(False).enabled
    assert Surrogate.parse({"candidates": 8}) == Surrogate(candidates=8)
    space = SearchSpace.from_dict({**TINY_SPACE, "algorithm": {"pop_size": 4, "surrogate": {"optimism": 0.5}}})
    assert space.surrogate == Surrogate(optimism=0.5)
    assert SearchSpace.from_dict(space.to_dict()).surrogate == space.surrogate
    assert SearchSpace.from_dict({**TINY_SPACE, "algorithm": {"surrogate": "off"}}).surrogate.candidates == 1
    with pytest.raises(ConfigError, match=r"algorithm.surrogate; valid keys: \['candidates', 'optimism'\]"):
        SearchSpace.from_dict({**TINY_SPACE, "algorithm": {"surrogate": {"kernel": "rbf"}}})
    with pytest.raises(ConfigError, match="algorithm.surrogate.candidates"):
        Surrogate(candidates=0)
    with pytest.raises(ConfigError, match="algorithm.surrogate.optimism"):
        Surrogate(optimism=-1)
    assert load_space("vgg19").surrogate.enabled


def test_proposals_on_the_front_are_chosen_over_dominated_ones() -> None:
    rng = np.random.default_rng(0)
    seen = np.column_stack([rng.integers(0, 10, 20), rng.integers(0, 10, 20)])
    good = np.column_stack([np.arange(0, 10, 2), np.zeros(5, int)])  # on the true front (gene 1 = 0)
    bad = np.column_stack([np.arange(1, 10, 2), np.full(5, 9)])      # far behind it
    proposals = np.vstack([bad, good])
    chosen = choose_offspring(seen, _landscape(seen), None, proposals, 5, Surrogate(), np.array([9, 9]))
    assert len(chosen) == len(set(chosen)) == 5
    assert sorted(chosen) == list(range(5, 10))  # every pick is a front proposal
    # too few proposals, or too little data to fit: NSGA-II's own order
    assert choose_offspring(seen, _landscape(seen), None, proposals[:3], 5, Surrogate(), np.array([9, 9])) == [0, 1, 2]
    assert choose_offspring(seen[:2], _landscape(seen[:2]), None, proposals, 4, Surrogate(), np.array([9, 9])) \
        == [0, 1, 2, 3]


def test_proposals_predicted_infeasible_come_last() -> None:
    rng = np.random.default_rng(1)
    seen = np.column_stack([rng.integers(0, 10, 20), rng.integers(0, 10, 20)])
    G = (seen[:, 0:1] - 4.5) / 9.0  # feasible when gene 0 <= 4
    proposals = np.array([[9, 0], [8, 0], [1, 0], [2, 0]])
    chosen = choose_offspring(seen, _landscape(seen), G, proposals, 3, Surrogate(), np.array([9, 9]))
    assert set(chosen[:2]) == {2, 3} and chosen[2] in (0, 1)


def test_the_budget_cuts_the_last_generation_to_what_it_pays_for() -> None:
    objectives = Objectives(robustness="mean_corruption_accuracy", corruptions=("fog",), severities=(1,),
                            baseline_accuracy=90.0)
    racer = Racer((10, 40), lambda plans, a, b: [], CompressionPlan(), objectives, cells=1)
    assert racer.affordable() is None
    racer.budget_images = 1000
    assert racer.affordable() == 13  # ceil(1000 / (40 images x (1 cell + 1 clean)))
    racer.spent = 950
    assert racer.affordable() == 1
    racer.spent = 1000
    assert racer.affordable() == 0 and racer.exhausted


@pytest.mark.slow
def test_a_screened_search_measures_a_population_per_generation(tiny_search: SearchSettings, tmp_path: Path) -> None:
    settings = tiny_search.replace(algorithm={"generations": 3}, fidelity={"select_images": None})
    result = run_search(settings, log=lambda _: None)
    history = pd.read_csv(Path(settings.output.out) / "history.csv")
    assert (history["new"] <= 4).all() and len(history) == 3 and history["new"].iloc[1:].gt(0).all()
    config = (Path(settings.output.out) / "config.yaml").read_text()
    assert "surrogate" in config and "candidates: 4" in config
    assert result.pareto["plan_key"].is_unique


def test_the_first_generation_holds_the_extremes_and_each_technique_alone() -> None:
    from moo_compress.search.algorithms import initial_population

    encoding = SearchSpace.from_dict(TINY_SPACE).encoding({"all": ("conv",)})
    X = initial_population(encoding, 6, seed=0)
    plans = [encoding.decode(x).label() for x in X[:5]]
    assert plans[:2] == [encoding.decode(np.zeros(3, int)).label(), encoding.decode(encoding.upper_bounds).label()]
    assert plans[2:5] == ["P50", "C8", "Q8"]  # 50% pruning, 8 clusters, 8 bits: the mildest of each
    assert initial_population(encoding, 2, seed=0).shape == (2, 3)
