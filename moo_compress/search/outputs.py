"""What a search writes into its run folder (through :mod:`moo_compress.runfolder`, which owns the
format): ``config.yaml``, ``evaluations.csv``, ``pareto.csv``, ``knees.json``, ``history.csv``.
``summary.md`` and the figures are rendered from those files by the command line (and by
:meth:`moo_compress.search.api.Result.save`) through :func:`moo_compress.report.render_run`; the
search itself never imports the report."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from moo_compress import runfolder
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


def _stage(spec: EvaluationSpec) -> dict[str, Any]:
    """A stage's cache context, key, split and image counts (config.yaml)."""
    return {**spec.context(), "context_key": spec.context_key(), "split": spec.split, "split_seed": spec.split_seed,
            "n_per_class": spec.n_per_class, "images_per_cell": spec.window[1] if spec.window else None,
            "clean_whole_split": spec.clean_whole_split, "subset_seed": spec.seed}


def write_progress(out_dir: Path, frame: pd.DataFrame, history: pd.DataFrame) -> None:
    """Rewrites ``evaluations.csv`` and ``history.csv`` after a generation (an interrupted run keeps them)."""
    runfolder.write_tables(out_dir, evaluations=frame, history=history)


def write_all(result: SearchResult, *, settings: SearchSettings, space: SearchSpace, spec: EvaluationSpec,
              final_spec: EvaluationSpec | None, encoding: Encoding, objectives: Objectives,
              select_spec: EvaluationSpec | None = None, fidelity: dict[str, Any] | None = None,
              latency: dict[str, Any] | None = None) -> None:
    """Writes every table of a finished run and its ``config.yaml`` (``latency``: how latency was measured)."""
    out = result.out_dir
    config: dict[str, Any] = {
        "settings": settings.to_dict(),
        "space": space.to_dict(),
        "run": {
            "arch": spec.arch,
            "dataset": spec.dataset,
            "weights": spec.weights_path,
            "weights_sha256": spec.weights_sha256,
            "seed": settings.algorithm.seed,
            "variables": [v.name for v in encoding.variables],
            "layer_groups": {k: list(v) for k, v in encoding.groups.items()},
            "objectives": list(objectives.names),
            "split": {"seed": settings.fidelity.split_seed, "fraction_search": 0.5,
                      "screening": spec.split, "selection": None if select_spec is None else select_spec.split,
                      "report": None if final_spec is None else final_spec.split,
                      "report_on_search": settings.fidelity.report_on_search},
            "fidelity": fidelity,
            "screening": _stage(spec),
            "selection": None if select_spec is None else _stage(select_spec),
            "final": None if final_spec is None else _stage(final_spec),
            "corruptions": list(spec.corruptions),
            "corruption_params": spec.corruption_params,
            "severities": list(spec.severities),
            "latency": latency,
            "finished": dt.datetime.now().isoformat(timespec="seconds"),
            "seconds": round(result.seconds, 1),
            "versions": versions(),
        },
    }
    runfolder.write_config(out, config)
    runfolder.write_tables(out, evaluations=result.evaluations, history=result.history, pareto=result.pareto,
                           knees={"baseline": result.baseline, "recommendations": result.recommendations,
                                  "objectives": list(objectives.names), "robustness": objectives.robustness,
                                  "latency": latency})
