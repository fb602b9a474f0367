"""The algorithm is an argument: the registry's names, any pymoo algorithm object, the surrogate's reach."""

from __future__ import annotations

import copy
import pickle
from pathlib import Path

import pandas as pd
import pytest
import yaml

from moo_compress.errors import ConfigError, UnknownNameError
from moo_compress.search import AlgorithmSettings, SearchSettings
from moo_compress.search.algorithms import GridSearch, create_algorithm, list_algorithms, prepare_algorithm
from moo_compress.search.objectives import Objectives
from moo_compress.search.problem import CompressionProblem
from moo_compress.search.progress import RUN_LOG
from moo_compress.search.run import run_search
from moo_compress.search.space import load_space
from tests.search.conftest import TINY_SPACE


def _tiny_encoding(tmp_path: Path):  # noqa: ANN202 - a test helper
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(TINY_SPACE))
    return load_space(str(path)).encoding({"all": ("*",)})


def test_every_registered_algorithm_is_built_with_integer_genes(tmp_path: Path) -> None:
    encoding = _tiny_encoding(tmp_path)
    assert set(list_algorithms()) == {"nsga2", "nsga3", "grid"}
    for name in list_algorithms():
        algorithm = create_algorithm(name, encoding, 6, 0, 3)
        assert prepare_algorithm(algorithm) is algorithm
    with pytest.raises(UnknownNameError, match="nsga2"):
        AlgorithmSettings(name="nsga4")  # the error lists the valid names
    with pytest.raises(ConfigError, match="pymoo algorithm"):
        prepare_algorithm(object())


def test_a_pymoo_algorithm_gets_the_rounding_repair() -> None:
    from pymoo.algorithms.moo.sms import SMSEMOA
    from pymoo.operators.repair.rounding import RoundingRepair

    algorithm = prepare_algorithm(SMSEMOA(pop_size=4))
    assert isinstance(algorithm.repair, RoundingRepair)
    assert isinstance(algorithm.mating.repair, RoundingRepair)
    assert isinstance(algorithm.initialization.repair, RoundingRepair)


def test_the_problem_holds_names_and_bounds_only(tmp_path: Path) -> None:
    encoding = _tiny_encoding(tmp_path)
    objectives = Objectives(robustness="mean_corruption_accuracy", corruptions=("contrast",), severities=(1,),
                            baseline_accuracy=90.0)
    problem = CompressionProblem(encoding, objectives)
    assert copy.deepcopy(problem).n_var == problem.n_var == len(encoding.variables)
    assert len(pickle.dumps(problem)) < 20_000  # no model, dataset or evaluator inside


def test_the_grid_walks_every_plan_in_batches(tmp_path: Path) -> None:
    encoding = _tiny_encoding(tmp_path)
    grid = GridSearch(batch_size=4, max_evals=10).setup(CompressionProblem(encoding, Objectives(
        robustness="mean_corruption_accuracy", corruptions=("contrast",), severities=(1,), baseline_accuracy=90.0)))
    batches = []
    while grid.has_next():
        batches.append(grid.ask().get("X"))
    assert [len(b) for b in batches] == [4, 4, 2] and grid.generations == 3


@pytest.mark.slow
def test_another_pymoo_algorithm_runs_end_to_end_and_the_run_says_the_surrogate_is_off(
        tiny_search: SearchSettings) -> None:
    from pymoo.algorithms.moo.sms import SMSEMOA

    space = Path(tiny_search.target.space)
    spec = yaml.safe_load(space.read_text())
    spec["algorithm"]["surrogate"] = {"candidates": 3}
    space.write_text(yaml.safe_dump(spec))
    result = run_search(tiny_search, algorithm=SMSEMOA(pop_size=4))
    out = Path(tiny_search.output.out)
    evaluations = pd.read_csv(out / "evaluations.csv")
    assert len(evaluations) > 4 and (evaluations["status"] == "ok").all()
    assert set(evaluations["generation"]) == {1, 2} and len(result.pareto) >= 1
    log = (out / RUN_LOG).read_text()
    assert "the surrogate is off" in log and "SMSEMOA" in log
    assert "gen 1/" in log and "reference 1/1" in log  # messages and per-plan lines both kept


def test_a_space_names_any_registered_algorithm_and_a_wrong_name_lists_them() -> None:
    from moo_compress.search.space_parsing import parse_algorithm

    assert parse_algorithm({"name": "nsga3"})[0] == "nsga3" and parse_algorithm({})[0] == "nsga2"
    with pytest.raises(ConfigError, match="'nsga2', 'nsga3', 'grid'.*'cmaes'"):
        parse_algorithm({"name": "cmaes"})
