"""Picking plans of a run and re-evaluating them through the cache (``moo_compress.search.reevaluate``, used
by ``python -m moo_compress.evaluate --run`` and by the notebook): on the run's report split by default,
against the reference (the uncompressed model after the plans' recovery) with paired intervals."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import yaml

from moo_compress.cli import evaluate
from moo_compress.compress import CompressionPlan, RecoveryConfig
from moo_compress.errors import ConfigError
from moo_compress.report import load_run
from moo_compress.search import reevaluate
from moo_compress.search.latency import LatencySettings
from moo_compress.search.reevaluate import (
    DEFAULT_IMAGES,
    SPLIT_CHOICES,
    Reevaluation,
    SelectionBiasWarning,
    format_results,
    images_option,
    onnx_paths,
    reevaluate_run,
    select_plans,
    selection_warning,
    split_option,
)
from tests.report.conftest import write_run


@pytest.fixture
def tiny_run_config(synthetic_run: Path) -> Path:
    """The synthetic run with the ``config.yaml`` blocks of a run made since the search/report split
    (split seed 7)."""
    path = synthetic_run / "config.yaml"
    config = yaml.safe_load(path.read_text())
    config["settings"]["fidelity"]["split_seed"] = 7
    config["run"]["split"] = {"seed": 7, "fraction_search": 0.5, "screening": "search", "selection": "search",
                              "report": "report", "report_on_search": False}
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return synthetic_run


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


def test_split_option_defaults_to_report_for_a_run_and_all_without() -> None:
    assert split_option(None, run=True) == "report" and split_option(None, run=False) == "all"
    assert [split_option(s, run=True) for s in SPLIT_CHOICES] == list(SPLIT_CHOICES)
    with pytest.raises(ConfigError, match="split must be one of report, search, all"):
        split_option("test", run=True)


def test_selection_warning_names_the_optimistic_splits(tiny_run_config: Path, tmp_path: Path) -> None:
    run = load_run(tiny_run_config)
    assert selection_warning("report", run) is None and selection_warning("search", None) is None
    assert "selected these plans" in selection_warning("search", run)
    assert "optimistic" in selection_warning("all", run)
    # a run written before the search/report split selected on the whole test set
    assert "predates the search/report split" in selection_warning("report", load_run(write_run(tmp_path / "old")))


def test_cli_default_split_is_report_for_a_run_and_all_for_plans(synthetic_run: Path, tiny_run_config: Path,
                                                                 monkeypatch: pytest.MonkeyPatch,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    seen: list[dict[str, object]] = []

    def fake(settings: object, plans: object, **kwargs: object) -> Reevaluation:
        seen.append({"settings": settings, **kwargs})
        return Reevaluation((), arch="resnet20", dataset="cifar10", split=str(kwargs["split"]), split_seed=0,
                            precision="fp32")

    monkeypatch.setattr(reevaluate, "reevaluate_plans", fake)
    assert evaluate.main(["--run", str(tiny_run_config), "--select", "0"]) == 0
    assert evaluate.main(["--run", str(tiny_run_config), "--select", "0", "--split", "search"]) == 0
    assert "warning: split 'search'" in capsys.readouterr().err
    assert evaluate.main(["--arch", "resnet20", "--weights", str(synthetic_run / "config.yaml"),
                          "--plan", '{"sparsity": 0.5}']) == 0
    assert [s["split"] for s in seen] == ["report", "search", "all"]
    assert [s["images"] for s in seen] == [DEFAULT_IMAGES] * 3
    assert seen[0]["settings"].fidelity.split_seed == 7  # the run's split seed, from its config.yaml
    assert seen[0]["warning"] is None and "selected these plans" in seen[1]["warning"]
    with pytest.raises(SystemExit) as exc:  # --split needs --run or --plan
        evaluate.main(["--arch", "resnet20", "--split", "report"])
    assert exc.value.code == 2 and "need --run or --plan" in capsys.readouterr().err


@pytest.mark.slow
def test_reevaluate_run_reads_the_cache_and_exports(tiny_run: Path, tmp_path: Path) -> None:
    run = load_run(tiny_run)
    n_final = run.info["final"]["n_per_class"] * 10  # the run's report fidelity: every plan is cached
    # the first recommendation that found a plan (which ones do depends on the tiny run's front)
    method = next(r["method"] for r in run.recommendations if r.get("plan"))
    lines: list[str] = []
    result = reevaluate_run(tiny_run, [method, 0], images=n_final, export_dir=tmp_path / "exported",
                            progress=lines.append)
    assert isinstance(result, Reevaluation)
    assert [m.name for m in result.models[:2]] == ["reference", "original"] and result[method].role == "plan"
    assert all(m.cached and m.ok for m in result.models)
    frame = result.to_frame()
    assert list(frame["name"][:2]) == ["reference", "original"] and list(frame["role"][:2]) == ["reference", "original"]
    assert frame["cached"].all() and (frame["status"] == "ok").all()
    knee = next(r for r in run.recommendations if r["method"] == method)
    row = frame[frame["name"] == method].iloc[0]
    assert row["clean_accuracy"] == pytest.approx(knee["clean_accuracy"])
    assert row["compression_ratio"] == pytest.approx(knee["compression_ratio"])
    assert {"family/noise", "acc/gaussian_noise", "mce", "clean_delta_low", "mca_delta_high", "worst_class",
            "worst_corruption_delta"} <= set(frame.columns)
    exported = frame["export"].dropna()
    assert len(exported) == (frame["role"] == "plan").sum() and all(Path(p).is_file() for p in exported)
    assert "report split" in frame.attrs["fidelity"] and frame.attrs["n_clean"] == 30
    # a progress line per distinct model: done/total, name, label and how it went
    assert len(lines) == 2 + frame["plan_key"].nunique() and "[1/" in lines[2] and lines[-1].endswith("elapsed)")


@pytest.mark.slow
def test_reevaluate_run_defaults_to_the_report_split(tiny_run: Path) -> None:
    run = load_run(tiny_run)
    method = next(r["method"] for r in run.recommendations if r.get("plan"))
    with warnings.catch_warnings():
        warnings.simplefilter("error", SelectionBiasWarning)  # the report split never warns
        result = reevaluate_run(tiny_run, [method], progress=False)  # default images: capped to what the split holds
    frame = result.to_frame()
    assert frame.attrs["split"] == "report" and frame.attrs["split_seed"] == run.settings["split_seed"]
    assert frame.attrs["warning"] is None and frame["cached"].all()  # the run's own report evaluations
    assert frame.attrs["n_clean"] == 30 and frame.attrs["n_corrupted"] == 30  # 3 per class of the report split
    assert any("3 per class are used" in n for n in frame.attrs["notes"])
    text = format_results(result)
    assert "report split" in text and "never used to choose the plans" in text and "warning" not in text
    assert "cover the sampling of test images only" in text


@pytest.mark.slow
def test_deltas_are_against_the_reference_not_the_original(tiny_run: Path) -> None:
    run = load_run(tiny_run)
    method = next(r["method"] for r in run.recommendations if r.get("plan"))
    recovery = RecoveryConfig.from_dict(run.config["space"]["recovery"])
    reference = CompressionPlan(recovery=recovery)
    other = CompressionPlan(recovery=RecoveryConfig(bn_images=10))  # another recovery: its own reference
    result = reevaluate_run(tiny_run, [method], plans=[reference, '{"bn_images": 10, "bits": 8}'], workers=1,
                            progress=False)
    frame = result.to_frame().set_index("name")
    assert frame.loc["original", "plan_key"] == CompressionPlan().key()
    ref_name = f"reference (bn_images={recovery.bn_images})"
    assert frame.loc[ref_name, "plan_key"] == reference.key() and frame.loc[ref_name, "label"] == "recovery only"
    assert frame.loc["reference (bn_images=10)", "plan_key"] == other.key()
    for name in (method, "plan 0", "original"):
        assert frame.loc[name, "compared_to"] == ref_name
    assert frame.loc["plan 1", "compared_to"] == "reference (bn_images=10)"
    # a plan equal to the reference: no change, and an interval around 0
    same = frame.loc["plan 0"]
    assert same["clean_delta"] == 0 and same["clean_delta_low"] < 0 < same["clean_delta_high"]
    assert same["mca_delta"] == 0 and same["mca_delta_low"] < 0 < same["mca_delta_high"]
    assert same["mce"] == pytest.approx(100) and same["changed_predictions"] == 0
    # every delta is the plan's number minus its reference's, on the same images
    for name in (method, "plan 1", "original"):
        ref = frame.loc[frame.loc[name, "compared_to"]]
        row = frame.loc[name]
        assert row["clean_delta"] == pytest.approx(row["clean_accuracy"] - ref["clean_accuracy"])
        assert row["mca_delta"] == pytest.approx(row["mean_corruption_accuracy"] - ref["mean_corruption_accuracy"])
        assert row["clean_delta_low"] <= row["clean_delta"] <= row["clean_delta_high"]
    assert frame.loc[ref_name, ["clean_delta", "mca_delta"]].isna().all()  # the reference has no delta
    assert result["plan 0"].claims is not None and result["plan 0"].claims.changed_predictions == 0
    assert result[ref_name].claims is None and result[ref_name].compared_to is None
    text = format_results(result)
    assert "plan 0 (recovery only) against the " + ref_name in text and "clean 0.0 [-" in text and "points" in text


@pytest.mark.slow
def test_a_search_split_reevaluation_warns(tiny_run: Path) -> None:
    method = next(r["method"] for r in load_run(tiny_run).recommendations if r.get("plan"))
    with pytest.warns(SelectionBiasWarning, match="selected these plans"):
        result = reevaluate_run(tiny_run, [method], split="search", workers=1, progress=False)
    assert result.split == "search" and "selected these plans" in result.warning
    assert format_results(result).startswith("warning: split 'search'")


@pytest.mark.slow
def test_evaluate_cli_selects_a_recommendation(tiny_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    method = next(r["method"] for r in load_run(tiny_run).recommendations if r.get("plan"))
    assert evaluate.main(["--run", str(tiny_run), "--select", method, "--images", "30", "--device", "cpu"]) == 0
    captured = capsys.readouterr()
    out = captured.out
    assert "reference" in out and "original" in out and method in out and "clean %" in out
    assert "[1/3] reference: recovery only: cached" in out  # progress
    assert "report split" in out and "points" in out and "95% intervals" in out and not captured.err


def test_a_recommendation_without_a_plan_says_so(synthetic_run: Path) -> None:
    with pytest.raises(ConfigError, match="'high_tradeoff' found no plan"):
        select_plans(load_run(synthetic_run), ["high_tradeoff"])


def test_onnx_export_path_is_a_file_for_one_plan_and_a_folder_for_several(tmp_path: Path) -> None:
    one, two = CompressionPlan(), CompressionPlan(recovery=RecoveryConfig(bn_images=8))
    assert onnx_paths("resnet20", [("a", one)], tmp_path / "m.onnx") == {one.key(): tmp_path / "m.onnx"}
    files = onnx_paths("resnet20", [("a", one), ("b", two)], tmp_path / "out")
    assert [p.parent for p in files.values()] == [tmp_path / "out"] * 2 and len(set(files.values())) == 2
    assert all(p.name.startswith("resnet20-") and p.suffix == ".onnx" for p in files.values())
    with pytest.raises(ConfigError, match="names one file but 2 plans are selected"):
        onnx_paths("resnet20", [("a", one), ("b", two)], tmp_path / "m.onnx")


@pytest.mark.slow
def test_evaluate_cli_exports_onnx_and_reports_its_accuracy(tiny_run: Path, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    method = next(r["method"] for r in load_run(tiny_run).recommendations if r.get("plan"))
    target = tmp_path / "deployed.onnx"
    assert evaluate.main(["--run", str(tiny_run), "--select", method, "--images", "30", "--device", "cpu",
                          "--export-onnx", str(target), "--latency"]) == 0
    out = capsys.readouterr().out
    assert target.is_file() and f"{target} (" in out and "in ONNX Runtime against PyTorch's" in out
    line = next(x for x in out.splitlines() if x.strip().startswith(str(target)))
    onnx_accuracy = float(line.split("): ")[1].split("%")[0])
    pytorch_accuracy = float(line.split("PyTorch ")[1].split("%")[0])
    assert abs(onnx_accuracy - pytorch_accuracy) <= 1.0
    # --latency: the run did not measure latency, so the defaults (ONNX Runtime, 1 thread, 100 runs) time the
    # plan against its reference on this machine
    section = out.split("Latency of the deployed form on this machine (")[1]
    assert section.startswith("onnxruntime") and "median of 100 runs" in section
    reference, plan = [x for x in section.splitlines()[1:] if x.startswith("  ")][:2]
    assert reference.startswith("  reference (") and float(reference.split("): ")[1].split(" ms")[0]) > 0
    speedup = float(plan.split(" ms [")[1].split("], ")[1].split("x [")[0])
    low, high = (float(v) for v in plan.split("x [")[1].split("]")[0].split(", "))
    assert 0 < low <= speedup <= high
    assert ("a tie" in plan) == (low <= 1 <= high) and "batch 64:" in plan


def test_latency_settings_of_a_reevaluation_follow_the_run(synthetic_run: Path) -> None:
    run = load_run(synthetic_run)
    assert reevaluate.run_latency(None) == LatencySettings()
    run.knees["latency"] = {"runtime": "pytorch", "threads": 2, "rounds": 20, "batch_size": 8, "objective": True,
                            "runtime_name": "pytorch 2 eager", "hardware": "x", "reference_ms": 1.0,
                            "max_latency_ms": 3.0}
    assert reevaluate.run_latency(run) == LatencySettings(runtime="pytorch", threads=2, rounds=20, batch_size=8)


def test_latency_needs_plans_to_time(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        evaluate.main(["--arch", "resnet20", "--latency"])
    assert "--latency need --run or --plan" in capsys.readouterr().err


def test_a_run_whose_reference_check_chose_the_original_is_re_evaluated_against_the_original(
        tiny_run_config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    seen: list[object] = []

    def fake(settings: object, plans: object, **kwargs: object) -> Reevaluation:
        seen.append(kwargs["reference"])
        return Reevaluation((), arch="resnet20", dataset="cifar10", split="report", split_seed=0, precision="fp32")

    monkeypatch.setattr(reevaluate, "reevaluate_plans", fake)
    reevaluate.reevaluate_run(tiny_run_config, ["0"])
    knees_file = tiny_run_config / "knees.json"
    knees = json.loads(knees_file.read_text())
    knees["baseline"]["reference_check"] = {"damaged": True, "reference": "original"}
    knees_file.write_text(json.dumps(knees))
    reevaluate.reevaluate_run(tiny_run_config, ["0"])
    assert seen == [None, CompressionPlan()]
