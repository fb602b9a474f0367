"""Measured latency in the search: settings, the four-objective maths, the cached meter, an end-to-end deploy search."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from torch import nn

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

from moo_compress.compress import CompressionPlan, PruneConfig, QuantizeConfig  # noqa: E402
from moo_compress.compress.calibration import CalibrationData  # noqa: E402
from moo_compress.deploy import graph_structure  # noqa: E402
from moo_compress.errors import ConfigError  # noqa: E402
from moo_compress.search import SearchSettings  # noqa: E402
from moo_compress.search import latency as latency_module  # noqa: E402
from moo_compress.search.final import recommend  # noqa: E402
from moo_compress.search.latency import LATENCY_FIELDS, LatencyMeter, LatencySettings  # noqa: E402
from moo_compress.search.objectives import Objectives  # noqa: E402
from moo_compress.search.run import run_search  # noqa: E402
from moo_compress.search.space import FAMILY_DEPLOY_SPACES, SearchSpace, default_space, load_space  # noqa: E402

MEAN, STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)


def _chain() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
                         nn.Conv2d(16, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10)).eval()


def _calibration(n: int = 16) -> CalibrationData:
    images = np.random.default_rng(0).integers(0, 256, size=(n, 8, 8, 3), dtype=np.uint8)
    return CalibrationData(images=images, mean=MEAN, std=STD)


def _meter(tmp_path: Path, **settings: object) -> LatencyMeter:
    return LatencyMeter(LatencySettings(rounds=5, batch_size=4, **settings), model=_chain(), mean=MEAN, std=STD,
                        input_size=(3, 8, 8), weights_sha256="0" * 64, calibration=_calibration(),
                        reference_plan=CompressionPlan(), cache_dir=tmp_path / "cache")


# -- settings and spaces ---------------------------------------------------------------------------------------------
def test_latency_settings_parse_and_name_bad_keys() -> None:
    assert LatencySettings.parse(None) is None and LatencySettings.parse(False) is None
    assert LatencySettings.parse(True) == LatencySettings()
    assert LatencySettings.parse({"threads": 2, "runtime": "pytorch"}).threads == 2
    with pytest.raises(ConfigError, match="objectives.latency.thread"):
        LatencySettings.parse({"thread": 2})
    with pytest.raises(ConfigError, match="runtime must be one of onnxruntime, pytorch"):
        LatencySettings(runtime="tensorrt")
    with pytest.raises(ConfigError, match="objectives.latency.rounds"):
        LatencySettings(rounds=2)


def test_space_latency_objective_and_constraint_round_trip() -> None:
    base = {"genes": {"sparsity": [0.0, 0.5]}}
    plain = SearchSpace.from_dict(base)
    assert plain.latency is None and plain.max_latency_ms is None
    space = SearchSpace.from_dict({**base, "objectives": {"latency": {"rounds": 20}},
                                   "constraints": {"max_latency_ms": 1.5}})
    assert space.latency == LatencySettings(rounds=20) and space.max_latency_ms == 1.5
    assert SearchSpace.from_dict(space.to_dict()) == dataclass_without_source(space)
    only_constraint = SearchSpace.from_dict({**base, "constraints": {"max_latency_ms": 2}})
    assert only_constraint.latency == LatencySettings(objective=False)  # measured, constrained, not optimised
    with pytest.raises(ConfigError, match="constraints.max_latency_ms must be a positive number"):
        SearchSpace.from_dict({**base, "constraints": {"max_latency_ms": 0}})


def dataclass_without_source(space: SearchSpace) -> SearchSpace:
    import dataclasses

    return dataclasses.replace(space, source="<dict>")


def test_deploy_resolves_to_the_family_space_and_every_deploy_space_measures_latency() -> None:
    assert default_space("cifar_resnet", "deploy") == "deploy_cifar_resnet"
    assert default_space("user", "deploy") == "deploy"  # models of one's own: derived from their graph
    assert default_space("vgg") == "vgg19" and default_space("vgg", "paper") == "paper"
    for name in [*FAMILY_DEPLOY_SPACES.values(), "deploy"]:
        space = load_space(name)
        assert space.latency is not None and space.latency.objective, name
        assert space.prune == {"scope": "layer", "structured": True, "removable_only": True}, name
        kinds = {g.kind: g.choices for g in space.genes}
        assert kinds["activation_bits"] == (None, 8) and kinds["weight_bits"] == (None, 8), name


# -- objectives --------------------------------------------------------------------------------------------------------
def test_four_objectives_and_latency_constraint() -> None:
    objectives = Objectives("mean_corruption_accuracy", ("gaussian_noise",), (1,), 90.0, latency=True,
                            max_latency_ms=2.0, baseline_latency_ms=4.0)
    assert objectives.names[-1] == "latency_ms" and objectives.n_constraints == 1
    metrics = {"clean_accuracy": 90.0, "mean_corruption_accuracy": 70.0, "compression_ratio": 4.0, "latency_ms": 1.0}
    F = objectives.objective_vector(metrics)
    assert F.shape == (4,) and F[3] == pytest.approx(math.log2(1.0 / 4.0))  # 4x faster than the reference
    paired = objectives.objective_vector({**metrics, "latency_speedup": 2.0})  # the same-rounds ratio wins
    assert paired[3] == pytest.approx(-1.0)
    assert objectives.constraint_vector(metrics)[0] == pytest.approx(-0.5)
    assert objectives.constraint_vector({**metrics, "latency_ms": 3.0})[0] == pytest.approx(0.5)
    missing = dict(metrics)
    del missing["latency_ms"]
    assert np.array_equal(objectives.objective_vector(missing), objectives.worst())  # unmeasured: worst
    assert objectives.constraint_vector(None)[0] > 0
    assert len(objectives.reference_point()) == 4 and objectives.reference_point()[3] == 1.0  # 2x slower
    three = Objectives("mean_corruption_accuracy", ("gaussian_noise",), (1,), 90.0)
    assert len(three.objective_vector(metrics)) == 3 and three.n_constraints == 0


def test_recommend_finds_knees_in_four_dimensions() -> None:
    # equal on everything but latency: the four-dimensional knees must pick the fast plan
    front = pd.DataFrame({"select/clean_accuracy": [90.0, 90.0, 80.0],
                          "select/mean_corruption_accuracy": [70.0, 70.0, 60.0],
                          "select/compression_ratio": [4.0, 4.0, 8.0], "select/latency_speedup": [1.0, 2.0, 1.5]})
    picks = recommend(front, 90.0, "mean_corruption_accuracy", min_ratio=2, max_drop=5, latency=True)
    chosen = {p.method: p.row for p in picks}
    assert chosen["closest_to_ideal"] == 1 and "all four objectives" in picks[1].why
    without = recommend(front, 90.0, "mean_corruption_accuracy", min_ratio=2, max_drop=5)
    assert "all three objectives" in without[1].why


# -- structure and meter ---------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_graph_structure_ignores_weight_values_but_not_shapes_or_formats(tmp_path: Path) -> None:
    from moo_compress.compress import compress
    from moo_compress.deploy import export_onnx

    files = {}
    plans = {"dense": CompressionPlan(), "q4": CompressionPlan(quantize=QuantizeConfig(4)),
             "pruned": CompressionPlan(prune=PruneConfig(0.5, scope="layer", structured=True, removable_only=True)),
             "w8a8": CompressionPlan(quantize=QuantizeConfig(8, activation_bits=8))}
    for name, plan in plans.items():
        small = compress(_chain(), plan, _calibration())
        files[name] = export_onnx(small, None, tmp_path / f"{name}.onnx", mean=MEAN, std=STD, input_size=(3, 8, 8),
                                  calibration=_calibration()).path
    structure = {name: graph_structure(path) for name, path in files.items()}
    assert structure["dense"] == structure["q4"]  # weight-only quantization deploys dequantized floats
    assert len({structure["dense"], structure["pruned"], structure["w8a8"]}) == 3


@pytest.mark.slow
def test_meter_measures_each_structure_once_and_caches_across_runs(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from moo_compress.deploy import latency as timing

    timed = []
    real = timing.measure_deployed

    def counting(path: Path, reference: Path, **kwargs: object) -> timing.DeployedLatency:
        timed.append(Path(path).stem)
        return real(path, reference, **kwargs)

    monkeypatch.setattr(timing, "measure_deployed", counting)
    plans = [CompressionPlan(), CompressionPlan(quantize=QuantizeConfig(4)),
             CompressionPlan(quantize=QuantizeConfig(6)),
             CompressionPlan(quantize=QuantizeConfig(8, activation_bits=8))]
    out = _meter(tmp_path)(plans)
    assert set(out) == {p.key() for p in plans}
    for fields in out.values():
        assert set(fields) == set(LATENCY_FIELDS)
        assert 0 < fields["latency_low_ms"] <= fields["latency_ms"] <= fields["latency_high_ms"]
        assert 0 < fields["latency_speedup_low"] <= fields["latency_speedup"] <= fields["latency_speedup_high"]
        assert fields["latency_batch_ms"] > 0 and fields["latency_speedup"] > 0
    assert len({out[p.key()]["latency_structure"] for p in plans[:3]}) == 1  # one float structure
    assert out[plans[0].key()]["latency_ms"] == out[plans[2].key()]["latency_ms"]  # one measurement, shared
    assert sorted(timed) == sorted({f["latency_structure"] for f in out.values()})  # each structure timed once

    timed.clear()
    again = _meter(tmp_path)(plans)  # a new run on the same machine: read from the cache
    assert again == out and timed == []


def test_meter_records_a_plan_that_cannot_deploy_as_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    meter = _meter(tmp_path)
    meter([CompressionPlan()])  # the reference deploys

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("exporter exploded")

    monkeypatch.setattr(latency_module, "export_onnx", broken)
    out = meter([CompressionPlan(quantize=QuantizeConfig(5))])
    assert list(out.values()) == [{"latency_error": "RuntimeError: exporter exploded"}]


def test_pytorch_runtime_times_the_eager_model(tmp_path: Path) -> None:
    meter = _meter(tmp_path, runtime="pytorch")
    out = meter([CompressionPlan(), CompressionPlan(quantize=QuantizeConfig(8, activation_bits=8))])
    values = list(out.values())
    assert all(v["latency_ms"] > 0 for v in values) and "pytorch" in meter.runtime
    assert values[0]["latency_structure"] != values[1]["latency_structure"]  # fake-quantized inputs cost time


# -- end to end --------------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_deploy_search_on_a_tiny_model_writes_latency_everywhere(tiny_search: SearchSettings) -> None:
    space_file = Path(tiny_search.target.space)
    space = yaml.safe_load(space_file.read_text())
    space.update(genes={"sparsity": {"choices": [0.0, 0.5]}, "weight_bits": {"choices": [32, 8]},
                        "activation_bits": {"choices": ["off", 8]}},
                 prune={"scope": "layer", "structured": True, "removable_only": True},
                 exclude={"first_conv": False},
                 objectives={**space["objectives"], "latency": {"rounds": 5, "batch_size": 4}},
                 algorithm={"name": "grid", "pop_size": 4})
    space_file.write_text(yaml.safe_dump(space))
    result = run_search(tiny_search, log=lambda line: None)
    out = Path(tiny_search.output.out)
    ev = pd.read_csv(out / "evaluations.csv")
    assert (ev["status"] == "ok").all() and (ev["latency_ms"] > 0).all()
    assert ev.loc[ev["label"].str.contains("P50r"), "latency_structure"].nunique() >= 1
    knees = json.loads((out / "knees.json").read_text())
    assert knees["objectives"][-1] == "latency_ms"
    assert knees["latency"]["runtime_name"].startswith("onnxruntime") and knees["latency"]["reference_ms"] > 0
    recommended = [r for r in knees["recommendations"] if r.get("row") is not None]
    assert recommended and all(r["latency"]["ms"] > 0 for r in recommended)
    for r in recommended:  # each recommendation deployed as a file ONNX Runtime runs, checked against PyTorch
        assert (out / r["onnx"]["file"]).is_file() and r["onnx"]["within_tolerance"], r["onnx"]
        assert r["onnx"]["gap"] == pytest.approx(r["onnx"]["accuracy"] - r["onnx"]["torch_accuracy"])
    assert knees["baseline"]["deployed"]["images"] > 0
    assert {"final/latency_ms", "select/latency_ms"} <= set(result.pareto.columns)
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert config["run"]["latency"]["hardware"] and config["run"]["objectives"][-1] == "latency_ms"
    assert result.history["hypervolume"].iloc[-1] > 0
