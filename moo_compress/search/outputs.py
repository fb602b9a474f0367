"""Writing a run folder: ``config.yaml``, ``evaluations.csv``, ``pareto.csv``, ``knees.json``,
``history.csv``; then :func:`moo_compress.report.render_run` writes ``summary.md`` and the figures
from those files alone (``python -m moo_compress.report`` regenerates them the same way)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import yaml

from moo_compress.fileio import atomic_write_json, atomic_write_text
from moo_compress.provenance import numeric_versions

if TYPE_CHECKING:
    from moo_compress.search.candidate import EvaluationSpec
    from moo_compress.search.objectives import Objectives
    from moo_compress.search.run import SearchResult
    from moo_compress.search.settings import SearchSettings
    from moo_compress.search.space import Encoding, SearchSpace

__all__ = ["write_progress", "write_all", "versions"]


def versions() -> dict[str, str]:
    """Versions of Python and the packages that determine a run's numbers (and its search path)."""
    import pymoo

    return {**numeric_versions(), "pymoo": pymoo.__version__, "pandas": pd.__version__}


def _csv(frame: pd.DataFrame) -> str:
    frame = frame.copy()
    if "plan" in frame:
        frame["plan"] = [json.dumps(p, sort_keys=True, separators=(",", ":")) for p in frame["plan"]]
    return frame.drop(columns=[c for c in ("_F",) if c in frame]).to_csv(index=False, float_format="%.6g")


def _stage(spec: EvaluationSpec) -> dict[str, Any]:
    """A stage's cache context, key, split and image counts (config.yaml)."""
    return {**spec.context(), "context_key": spec.context_key(), "split": spec.split, "split_seed": spec.split_seed,
            "n_per_class": spec.n_per_class, "images_per_cell": spec.window[1] if spec.window else None,
            "clean_whole_split": spec.clean_whole_split, "subset_seed": spec.seed}


def write_progress(out_dir: Path, frame: pd.DataFrame, history: pd.DataFrame) -> None:
    """Rewrites ``evaluations.csv`` and ``history.csv`` after a generation (an interrupted run keeps them)."""
    atomic_write_text(out_dir / "evaluations.csv", _csv(frame))
    atomic_write_text(out_dir / "history.csv", history.to_csv(index=False, float_format="%.6g"))


def write_all(result: SearchResult, *, settings: SearchSettings, space: SearchSpace, spec: EvaluationSpec,
              final_spec: EvaluationSpec | None, encoding: Encoding, objectives: Objectives,
              select_spec: EvaluationSpec | None = None, fidelity: dict[str, Any] | None = None) -> None:
    """Writes every output of a finished run, then renders the summary and figures."""
    from moo_compress.report import render_run

    out = result.out_dir
    config: dict[str, Any] = {
        "settings": settings.to_dict(),
        "space": space.to_dict(),
        "run": {
            "arch": spec.arch,
            "dataset": spec.dataset,
            "weights": spec.weights_path,
            "weights_sha256": spec.weights_sha256,
            "seed": settings.seed,
            "variables": [v.name for v in encoding.variables],
            "layer_groups": {k: list(v) for k, v in encoding.groups.items()},
            "objectives": list(objectives.names),
            "split": {"seed": settings.split_seed, "fraction_search": 0.5,
                      "screening": spec.split, "selection": None if select_spec is None else select_spec.split,
                      "report": None if final_spec is None else final_spec.split,
                      "report_on_search": settings.report_on_search},
            "fidelity": fidelity,
            "screening": _stage(spec),
            "selection": None if select_spec is None else _stage(select_spec),
            "final": None if final_spec is None else _stage(final_spec),
            "corruptions": list(spec.corruptions),
            "severities": list(spec.severities),
            "finished": dt.datetime.now().isoformat(timespec="seconds"),
            "seconds": round(result.seconds, 1),
            "versions": versions(),
        },
    }
    atomic_write_text(out / "config.yaml", yaml.safe_dump(config, sort_keys=False))
    write_progress(out, result.evaluations, result.history)
    atomic_write_text(out / "pareto.csv", _csv(result.pareto))
    atomic_write_json(out / "knees.json", {"baseline": result.baseline, "recommendations": result.recommendations,
                                           "objectives": list(objectives.names),
                                           "robustness": objectives.robustness})
    render_run(out)
