"""End-to-end searches on a tiny model and tiny data: outputs, cache replay, resumption, failures, errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from moo_compress import runfolder
from moo_compress.cli import search as search_cli
from moo_compress.errors import ConfigError
from moo_compress.report import render_run
from moo_compress.search import AlgorithmSettings, FidelitySettings, SearchSettings, TargetSettings, candidate
from moo_compress.search.cache import CONTEXT_FILE
from moo_compress.search.run import run_search

OUTPUTS = ["config.yaml", "evaluations.csv", "pareto.csv", "knees.json", "history.csv", "summary.md", "fronts.png",
           "hypervolume.png"]


def _quiet(_: str) -> None:
    pass


@pytest.mark.slow
def test_search_writes_every_output_and_replays_from_cache(tiny_search: SearchSettings) -> None:
    first = run_search(tiny_search, log=_quiet, render=render_run)
    out = Path(tiny_search.output.out)
    for name in OUTPUTS:
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    ev = pd.read_csv(out / "evaluations.csv")
    assert len(ev) == len(first.evaluations) >= 5
    assert (ev["status"] == "ok").all() and not ev["cache_hit"].any()
    assert {"gene/sparsity", "gene/clusters", "gene/weight_bits", "clean_accuracy", "mean_corruption_accuracy",
            "mce", "compression_ratio", "acc/gaussian_noise", "family/noise", "seconds"} <= set(ev.columns)
    pareto = pd.read_csv(out / "pareto.csv")
    assert 1 <= len(pareto) <= len(ev) and set(pareto["plan_key"]) <= set(ev["plan_key"])
    assert pareto["compression_ratio"].is_monotonic_increasing
    assert {"final/clean_accuracy", "final/mean_corruption_accuracy", "final/compression_ratio"} <= set(pareto.columns)
    knees = json.loads((out / "knees.json").read_text())
    assert knees["baseline"]["final"]["compression_ratio"] == 1.0
    assert {r["method"] for r in knees["recommendations"]} >= {"most_robust_min_ratio", "smallest_within_drop"}
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert config["settings"]["algorithm"]["seed"] == 0 and len(config["run"]["weights_sha256"]) == 64
    assert SearchSettings.from_dict(config["settings"]) == tiny_search.resolved()  # the run's own, to reproduce it
    assert config["run"]["versions"]["pymoo"] and config["space"]["name"] == "tiny"
    summary = (out / "summary.md").read_text()
    assert "## Recommendations" in summary and "## Pareto set" in summary and "fronts.png" in summary
    history = pd.read_csv(out / "history.csv")
    assert history["generation"].tolist() == [1, 2] and (history["hypervolume"] > 0).all()

    (out / "summary.md").unlink()
    again = run_search(tiny_search, log=_quiet)  # same command: a full cache hit with the same results
    assert not (out / "summary.md").exists()  # the search writes tables; rendering is the caller's (the CLI's)
    assert yaml.safe_load((out / "config.yaml").read_text())["format_version"] == runfolder.FORMAT_VERSION
    assert again.evaluations["cache_hit"].all()
    pd.testing.assert_frame_equal(
        again.pareto.drop(columns=["cache_hit", "seconds"]), first.pareto.drop(columns=["cache_hit", "seconds"]))


@pytest.mark.slow
def test_failed_candidate_is_recorded_and_search_goes_on(tiny_search: SearchSettings,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    real = candidate.compress

    def flaky(model, plan, calibration=None):  # noqa: ANN001, ANN202
        if plan.cluster is not None:
            raise RuntimeError("simulated clustering failure")
        return real(model, plan, calibration=calibration)

    monkeypatch.setattr(candidate, "compress", flaky)
    result = run_search(tiny_search.replace(fidelity={"final_images": 0}), log=_quiet)
    ev = result.evaluations
    failed = ev[ev["status"] == "failed"]
    assert len(failed) >= 1 and failed["error"].str.contains("simulated clustering failure").all()
    assert not failed["pareto"].any() and not failed["feasible"].any()
    assert (ev["status"] == "ok").any() and len(result.pareto) >= 1


@pytest.mark.slow
def test_killed_run_resumes_to_the_same_results(tiny_search: SearchSettings, tmp_path: Path) -> None:
    reference = run_search(tiny_search.replace(output={"out": str(tmp_path / "ref")},
                                               execution={"cache_dir": str(tmp_path / "ref-cache")}), log=_quiet)
    target, cache = tiny_search.target, tiny_search.execution.cache_dir
    args = ["--arch", "resnet20", "--weights", target.weights, "--data-root", target.data_root,
            "--space", target.space, "--eval-images", "20", "--final-images", "30", "--precision", "fp32",
            "--device", "cpu", "--out", tiny_search.output.out, "--cache-dir", cache]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.Popen([sys.executable, "-m", "moo_compress.search", *args], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    records = Path(cache) / "evaluations"
    first_generation = Path(tiny_search.output.out) / "evaluations.csv"  # written after each generation
    deadline = time.time() + 120
    def stored_records() -> int:  # plan records, not the context file beside them
        return sum(f.name != CONTEXT_FILE for f in records.glob("*/*.json"))

    # killed once the first generation's plans are stored (the reference check's evaluations come before them)
    while time.time() < deadline and not first_generation.exists() and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert stored_records() >= 1  # killed midway, with some results stored
    resumed = run_search(tiny_search, log=_quiet)
    assert resumed.evaluations["cache_hit"].sum() >= 1
    keep = ["plan_key", "clean_accuracy", "mean_corruption_accuracy", "compression_ratio", "final/clean_accuracy"]
    pd.testing.assert_frame_equal(resumed.pareto[keep], reference.pareto[keep])


def test_impossible_constraint_is_a_clear_error(tiny_search: SearchSettings, tmp_path: Path) -> None:
    from tests.search.conftest import TINY_SPACE

    space = tmp_path / "greedy.yaml"
    space.write_text(yaml.safe_dump({**TINY_SPACE, "constraints": {"min_compression_ratio": 500}}))
    with pytest.raises(ConfigError, match=r"min_compression_ratio=500 cannot be met: the strongest plan .* reaches"):
        run_search(tiny_search.replace(target={"space": str(space)}), log=_quiet)


def test_cli_reports_malformed_space_in_one_line(tiny_search: SearchSettings, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    space = tmp_path / "bad.yaml"
    space.write_text("genes:\n  sparsity: {choices: [0.0, 2.0]}\n")
    code = search_cli.main(["--arch", "resnet20", "--weights", tiny_search.target.weights, "--data-root",
                            tiny_search.target.data_root, "--space", str(space), "--cache-dir",
                            tiny_search.execution.cache_dir])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err
    assert "genes.sparsity.choices[1]=2.0" in err and "bad.yaml" in err
    assert search_cli.main(["--arch", "resnet20", "--space", "nope"]) == 2
    assert "search space 'nope' not found" in capsys.readouterr().err


def test_settings_validation() -> None:
    with pytest.raises(ConfigError, match="--pop-size"):
        AlgorithmSettings(pop_size=1)
    with pytest.raises(ConfigError, match="--final-images"):
        FidelitySettings(final_images="most")
    quick = SearchSettings(TargetSettings("resnet20"), fidelity=FidelitySettings(eval_images=50), quick=True).resolved()
    assert quick.algorithm.pop_size == 6 and quick.algorithm.generations == 2
    fidelity = quick.fidelity
    assert fidelity.eval_images == 50 and fidelity.final_images == 50 and fidelity.select_images == 50
