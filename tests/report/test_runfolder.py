"""The run-folder format: one writer and one reader, versioned; folders from before the version open."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml

from moo_compress import runfolder
from moo_compress.errors import DataFormatError, DataNotFoundError
from moo_compress.report import load_run, render_run, summary_markdown
from tests.report.conftest import write_run


def test_tables_round_trip_through_the_writer_and_the_reader(tmp_path: Path) -> None:
    evaluations = pd.DataFrame({"plan_key": ["a", "b"], "plan": [{"prune": {"sparsity": 0.5}}, {}],
                                "clean_accuracy": [91.234567891, 90.0], "pareto": [True, False],
                                "_F": [[0, 0, 0], [1, 1, 1]]})
    history = pd.DataFrame({"generation": [1], "hypervolume": [0.5]})
    knees = {"baseline": {"final": {"clean_accuracy": 92.0}}, "recommendations": []}
    runfolder.write_config(tmp_path, {"settings": {"arch": "resnet20"}, "format_version": 99})
    runfolder.write_tables(tmp_path, evaluations=evaluations, history=history, pareto=evaluations.iloc[:1],
                           knees=knees)
    run = runfolder.read_run(tmp_path)
    assert run["config"]["format_version"] == runfolder.FORMAT_VERSION  # the writer's, not the caller's
    assert run["evaluations"]["plan"].tolist() == [{"prune": {"sparsity": 0.5}}, {}]
    assert "_F" not in run["evaluations"] and run["evaluations"]["pareto"].dtype == bool
    assert run["evaluations"]["clean_accuracy"].iloc[0] == pytest.approx(91.2346)  # 6 significant digits
    assert run["knees"] == knees and run["history"].equals(history)
    assert list(run["pareto"]["plan_key"]) == ["a"]


def test_folders_written_before_the_format_version_still_open(tmp_path: Path) -> None:
    folder = write_run(tmp_path / "run")
    config = yaml.safe_load((folder / "config.yaml").read_text())
    del config["format_version"]  # as every run folder written before the version was recorded
    (folder / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    run = load_run(folder)
    assert runfolder.format_version(run.config) == 1 and len(run.pareto) and run.recommendations
    config["format_version"] = runfolder.FORMAT_VERSION + 1
    (folder / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    with pytest.raises(DataFormatError, match="newer than this moo_compress reads"):
        load_run(folder)
    (folder / "knees.json").unlink()
    with pytest.raises(DataNotFoundError, match="knees.json missing"):
        load_run(folder)


@pytest.mark.slow
def test_run_folders_with_flat_settings_still_read_and_render(tmp_path: Path) -> None:
    """Folders written before the settings were grouped (format 2: flat ``settings``) read and render as new ones."""
    old, new = (load_run(write_run(tmp_path / name, seed=3, flat_settings=name == "old")) for name in ("old", "new"))
    assert runfolder.format_version(old.config) == 2 and "arch" in old.config["settings"]
    assert runfolder.format_version(new.config) == runfolder.FORMAT_VERSION == 3
    assert set(new.config["settings"]) == {"target", "algorithm", "fidelity", "execution", "output", "quick"}
    expected = {"arch": "resnet20", "dataset": "cifar10", "precision": "fp32", "seed": 3, "eval_images": 20,
                "final_images": 100}
    assert old.settings == expected
    assert new.settings == {**expected, "quick": False}
    text = {run.path.name: summary_markdown(run).replace(str(run.path), "RUN") for run in (old, new)}
    assert text["old"] == text["new"]  # the same numbers, settings and provenance give the same summary
    assert "(fp32 inference)" in summary_markdown(old)
    rendered = render_run(old.path)
    assert (old.path / runfolder.SUMMARY).is_file() and rendered


def test_flat_settings_reads_both_forms() -> None:
    nested = {"target": {"model": "a.py:build", "dataset": "imagefolder"}, "algorithm": {"seed": 2},
              "fidelity": {"mode": "racing", "rungs": [10, 20]}, "execution": {"precision": "bf16"}, "output": {},
              "quick": True}
    assert runfolder.flat_settings({"settings": nested}) == {
        "arch": "a.py:build", "dataset": "imagefolder", "seed": 2, "fidelity": "racing", "rungs": [10, 20],
        "precision": "bf16", "quick": True}
    flat = {"arch": "vgg19", "fidelity": "racing", "seed": 1}  # an old "fidelity" names the mode, not a group
    assert runfolder.flat_settings({"settings": flat}) == flat
    assert runfolder.flat_settings({"format_version": 1}) == {}
