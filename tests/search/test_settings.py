"""Grouped search settings: validation, JSON/YAML round-trip, the flat form of older run folders, the CLI."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest
import yaml

from moo_compress import runfolder
from moo_compress.cli.search import build_parser, settings_from_args
from moo_compress.errors import ConfigError
from moo_compress.search import (
    AlgorithmSettings,
    ExecutionSettings,
    FidelitySettings,
    OutputSettings,
    SearchSettings,
    TargetSettings,
)

#: Every field of every group away from its default.
FULL = SearchSettings(
    TargetSettings("resnet20", dataset="cifar100", data_root="/data/c100", weights="/w/r20.pt", weights_dir="/w",
                   mean=(0.5, 0.4, 0.3), std=(0.2, 0.25, 0.3), input_size=32, release_dir="/data/c100c",
                   space="cifar_resnet", calibration_images=256),
    algorithm=AlgorithmSettings(name="nsga3", pop_size=8, generations=3, seed=4, max_evals=40, budget_images=90000,
                                time_budget=600.0),
    fidelity=FidelitySettings(mode="fixed", rungs=(10, 20, 40), eval_images=30, select_images=60,
                              final_images="all", split_seed=1, subset_seed=2, report_on_search=True,
                              held_out_images=25, promote=2),
    execution=ExecutionSettings(device="cpu", precision="fp32", threads=2, batch_size=32, workers=3,
                                scheduler="local", cache_dir="/tmp/cache"),
    output=OutputSettings(out="outputs/full", pick_min_ratio=4.0, pick_max_drop=1.0, held_out="front"),
    quick=True,
)
#: FULL as the flat ``settings`` of a run folder written before the grouping (format 2), written out by hand.
FULL_FLAT = {
    "arch": "resnet20", "dataset": "cifar100", "weights": "/w/r20.pt", "weights_dir": "/w", "mean": [0.5, 0.4, 0.3],
    "std": [0.2, 0.25, 0.3], "input_size": 32, "data_root": "/data/c100", "release_dir": "/data/c100c",
    "space": "cifar_resnet", "algorithm": "nsga3", "pop_size": 8, "generations": 3, "max_evals": 40,
    "time_budget": 600.0, "budget_images": 90000, "fidelity": "fixed", "rungs": [10, 20, 40], "eval_images": 30,
    "select_images": 60, "final_images": "all", "split_seed": 1, "report_on_search": True, "threads": 2,
    "calibration_images": 256,
    "precision": "fp32", "device": "cpu", "batch_size": 32, "seed": 4, "subset_seed": 2, "out": "outputs/full",
    "cache_dir": "/tmp/cache", "workers": 3, "scheduler": "local", "pick_min_ratio": 4.0, "pick_max_drop": 1.0,
    "held_out": "front", "held_out_images": 25, "promote": 2, "quick": True,
}


def test_every_field_of_full_is_away_from_its_default() -> None:
    for group in (FULL.target, FULL.algorithm, FULL.fidelity, FULL.execution, FULL.output):
        for f in dataclasses.fields(group):
            assert getattr(group, f.name) != f.default, f"{type(group).__name__}.{f.name}"
    assert len(FULL_FLAT) == sum(len(dataclasses.fields(g)) for g in (FULL.target, FULL.algorithm, FULL.fidelity,
                                                                        FULL.execution, FULL.output)) + 1


def test_settings_round_trip_through_json_and_yaml() -> None:
    data = FULL.to_dict()
    assert list(data) == ["target", "algorithm", "fidelity", "execution", "output", "quick"]
    assert data["target"]["model"] == "resnet20" and data["fidelity"]["mode"] == "fixed"
    assert data["fidelity"]["rungs"] == [10, 20, 40] and data["target"]["mean"] == [0.5, 0.4, 0.3]
    assert SearchSettings.from_dict(data) == FULL
    assert SearchSettings.from_dict(json.loads(json.dumps(data))) == FULL
    assert SearchSettings.from_dict(yaml.safe_load(yaml.safe_dump(data))) == FULL
    minimal = SearchSettings(TargetSettings("vgg19"))
    assert SearchSettings.from_dict(minimal.to_dict()) == minimal
    assert SearchSettings.from_dict({"target": {"model": "vgg19"}}) == minimal  # groups left out: defaults


def test_the_flat_settings_of_older_run_folders_load_to_the_same_settings() -> None:
    assert SearchSettings.from_dict(FULL_FLAT) == FULL
    assert SearchSettings.from_dict({"arch": "vgg19", "fidelity": None}) == SearchSettings(TargetSettings("vgg19"))
    # the readers' flat view of a new (nested) config is the old flat form, and an old one is kept as it is
    assert runfolder.flat_settings({"settings": FULL.to_dict()}) == FULL_FLAT
    assert runfolder.flat_settings({"settings": FULL_FLAT}) == FULL_FLAT
    assert runfolder.flat_settings({}) == {}


@pytest.mark.parametrize("data, match", [
    ({"target": {"model": "resnet20"}, "algoritm": {}}, r"unknown search settings \['algoritm'\] \(did you mean "
                                                        r"'algorithm'\?\); valid: target, algorithm, fidelity"),
    ({"target": {"model": "resnet20", "arch": "vgg19"}}, r"unknown target settings \['arch'\]; valid: model, "),
    ({"target": {"model": "resnet20"}, "fidelity": {"images": 5}}, r"unknown fidelity settings \['images'\]"),
    ({"arch": "resnet20", "popsize": 4}, r"\['popsize'\] \(did you mean 'pop_size'\?\); valid: arch, dataset"),
    ({"dataset": "cifar10"}, "need 'arch'"),
    ({"algorithm": {"seed": 1}}, "need a 'target'"),
    ({"target": {"dataset": "cifar10"}}, r"need target\.model"),
    ({"target": {"model": "resnet20"}, "execution": "cpu"}, "'execution' must be a mapping"),
])
def test_unknown_or_missing_settings_are_one_line_errors(data: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        SearchSettings.from_dict(data)


@pytest.mark.parametrize("make, option", [
    (lambda: AlgorithmSettings(pop_size=1), "--pop-size must be at least 2"),
    (lambda: AlgorithmSettings(generations=0), "--generations must be a positive integer"),
    (lambda: AlgorithmSettings(budget_images=-5), "--budget as images must be a positive integer"),
    (lambda: AlgorithmSettings(time_budget=0), "--budget as a time must be positive"),
    (lambda: FidelitySettings(select_images=-1), "--select-images must be an integer >= 0"),
    (lambda: FidelitySettings(final_images="most"), "--final-images must be 'all'"),
    (lambda: FidelitySettings(mode="fast"), "--fidelity must be 'racing' or 'fixed'"),
    (lambda: FidelitySettings(mode="racing", eval_images=40), "--eval-images sets a fixed fidelity"),
    (lambda: FidelitySettings(rungs=(20, 10)), "rungs"),
    (lambda: ExecutionSettings(workers=0), "--workers must be a positive integer"),
    (lambda: ExecutionSettings(threads=1.5), "--threads must be a positive integer"),
    (lambda: TargetSettings("resnet20", std=(0.2, 0.0, 0.2)), "--std must be three numbers"),
    (lambda: TargetSettings("resnet20", mean=(0.5, 0.5)), "--mean must be three numbers"),
    (lambda: TargetSettings("resnet20", calibration_images=-1), "--calibration-images must be an integer >= 0"),
    (lambda: TargetSettings(""), "--arch must name a model"),
    (lambda: SearchSettings("resnet20"), "SearchSettings.target must be a TargetSettings, got str"),
    (lambda: SearchSettings(TargetSettings("resnet20"), fidelity={"eval_images": 5}), "fidelity must be a Fidel"),
    (lambda: FULL.replace(fidelity={"images": 5}), r"unknown fidelity settings \['images'\]"),
])
def test_invalid_settings_name_the_option(make: Any, option: str) -> None:
    with pytest.raises(ConfigError, match=option):
        make()


def test_replace_changes_fields_of_the_named_groups_only() -> None:
    changed = FULL.replace(fidelity={"final_images": 0}, output={"out": "elsewhere"}, quick=False)
    assert changed.fidelity == dataclasses.replace(FULL.fidelity, final_images=0)
    assert changed.output.out == "elsewhere" and changed.output.pick_min_ratio == 4.0 and not changed.quick
    assert (changed.target, changed.algorithm, changed.execution) == (FULL.target, FULL.algorithm, FULL.execution)
    assert FULL.replace() == FULL


def test_resolved_applies_the_quick_preset_and_defaults_per_group() -> None:
    quick = SearchSettings(TargetSettings("resnet20"), algorithm=AlgorithmSettings(generations=5),
                           fidelity=FidelitySettings(select_images=0), quick=True).resolved()
    assert (quick.algorithm.pop_size, quick.algorithm.generations) == (6, 5)  # given explicitly: kept
    assert quick.fidelity == FidelitySettings(rungs=(10, 20), select_images=0, final_images=50)
    assert quick.execution.threads == 1 and quick.execution.precision in ("fp32", "bf16")
    normal = SearchSettings(TargetSettings("resnet20"), execution=ExecutionSettings(precision="bf16")).resolved()
    assert normal.algorithm == AlgorithmSettings() and normal.fidelity == FidelitySettings(final_images=150)
    assert normal.execution == ExecutionSettings(precision="bf16", threads=1)
    assert normal.resolved() == normal


def test_path_objects_are_kept_as_strings(tmp_path: Any) -> None:
    settings = SearchSettings(TargetSettings("resnet20", data_root=tmp_path),
                              execution=ExecutionSettings(cache_dir=tmp_path / "cache"),
                              output=OutputSettings(out=tmp_path / "run"))
    assert settings.target.data_root == str(tmp_path) and settings.execution.cache_dir == str(tmp_path / "cache")
    assert yaml.safe_load(yaml.safe_dump(settings.to_dict()))["output"]["out"] == str(tmp_path / "run")


def test_the_command_line_groups_its_options_as_the_settings() -> None:
    parser = build_parser()
    groups = {g.title: {a.option_strings[0] for a in g._group_actions} for g in parser._action_groups}
    assert {"target", "algorithm", "fidelity", "execution", "output"} <= set(groups)
    assert {"--arch", "--dataset", "--data", "--weights", "--space", "--calibration-images"} <= groups["target"]
    assert groups["algorithm"] == {"--algorithm", "--pop-size", "--generations", "--seed", "--max-evals", "--budget"}
    assert {"--fidelity", "--rungs", "--eval-images", "--split-seed", "--subset-seed"} <= groups["fidelity"]
    assert groups["execution"] == {"--device", "--precision", "--threads", "--batch-size", "--workers",
                                   "--scheduler", "--cache-dir"}
    assert groups["output"] == {"--out", "--pick-min-ratio", "--pick-max-drop", "--held-out"}
    args = ["--arch", "resnet20", "--dataset", "cifar100", "--data-root", "/data/c100", "--weights", "/w/r20.pt",
            "--weights-dir", "/w", "--mean", "0.5,0.4,0.3", "--std", "0.2,0.25,0.3", "--input-size", "32",
            "--release-dir", "/data/c100c", "--space", "cifar_resnet", "--calibration-images", "256",
            "--algorithm", "nsga3", "--pop-size", "8", "--generations", "3", "--seed", "4", "--max-evals", "40",
            "--budget", "90000",
            "--fidelity", "fixed", "--rungs", "10,20,40", "--eval-images", "30", "--select-images", "60",
            "--final-images", "all", "--split-seed", "1", "--subset-seed", "2", "--report-on-search",
            "--held-out-images", "25", "--promote", "2",
            "--device", "cpu", "--precision", "fp32", "--threads", "2", "--batch-size", "32", "--workers", "3",
            "--scheduler", "local", "--cache-dir", "/tmp/cache", "--out", "outputs/full", "--pick-min-ratio", "4",
            "--pick-max-drop", "1", "--held-out", "front", "--quick"]
    assert settings_from_args(parser.parse_args(args)) == FULL.replace(algorithm={"time_budget": None})
    assert settings_from_args(parser.parse_args(["--arch", "vgg19"])) == SearchSettings(TargetSettings("vgg19"))


def test_the_run_folder_knows_the_groups_in_their_order() -> None:
    names = [f.name for f in dataclasses.fields(SearchSettings)]
    assert names == [*runfolder.SETTINGS_GROUPS, "quick"]
