"""The run-folder format, in one place: file names, how tables are written and read, the format version.

A run folder holds ``config.yaml`` (settings, resolved space, provenance, ``format_version``),
``evaluations.csv`` (one row per plan measured), ``pareto.csv`` (the selected front, ``select/*`` and
``final/*`` columns), ``knees.json`` (reference and original metrics, recommendations) and
``history.csv`` (one row per generation); ``summary.md`` and the figures are rendered from those.
The search writes through :func:`write_tables` / :func:`write_config`, :mod:`moo_compress.report`
reads through :func:`read_run`, and tests build folders with the same writer. Folders written before
the format was versioned (no ``format_version``) read as version 1 and open unchanged.

Versions: 1 (no ``format_version``) and 2 hold ``settings`` flat (``arch``, ``pop_size``, ``fidelity``,
``eval_images``, ...); 3 nests them by group (``target``, ``algorithm``, ``fidelity``, ``execution``,
``output``, then ``quick``; :class:`moo_compress.search.settings.SearchSettings`). Readers take the
settings through :func:`flat_settings`, which gives the flat form for every version.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from moo_compress.errors import DataFormatError, DataNotFoundError
from moo_compress.fileio import atomic_write_json, atomic_write_text

__all__ = ["FORMAT_VERSION", "CONFIG", "EVALUATIONS", "PARETO", "KNEES", "HISTORY", "SUMMARY", "REQUIRED",
           "METRIC_COLUMNS", "LATENCY_COLUMNS", "SETTINGS_GROUPS", "SETTINGS_FLAT_NAMES", "write_tables",
           "write_config", "read_table", "read_run", "format_version", "flat_settings"]

#: Version of the run-folder format written now (1: folders written before it was recorded; 3: settings
#: nested by group).
FORMAT_VERSION = 3
CONFIG = "config.yaml"
EVALUATIONS = "evaluations.csv"
PARETO = "pareto.csv"
KNEES = "knees.json"
HISTORY = "history.csv"
SUMMARY = "summary.md"
#: The files of a finished run (the rendered summary and figures are not required).
REQUIRED = (CONFIG, EVALUATIONS, PARETO, KNEES, HISTORY)
#: The metric columns of the tables (``pareto.csv`` also with ``select/`` and ``final/`` prefixes), in
#: display order; the search writes them and the report reads them by these names.
METRIC_COLUMNS = ("clean_accuracy", "mean_corruption_accuracy", "mce", "relative_mce", "compression_ratio")
#: The latency columns of a run that measured latency (also with ``select/`` and ``final/`` prefixes in
#: ``pareto.csv``): ``latency_ms`` (the objective: batch 1, median of the timed runs), ``_low``/``_high``
#: (their interquartile range), speed-ups (medians of per-round ratios against the reference timed in
#: alternation, with the interquartile range of those ratios), the larger batch, and ``latency_structure``
#: (the hash of the deployed graph).
LATENCY_COLUMNS = ("latency_ms", "latency_low_ms", "latency_high_ms", "latency_speedup", "latency_speedup_low",
                   "latency_speedup_high", "latency_batch_ms", "latency_batch_speedup", "latency_structure")
#: The groups of ``settings`` in ``config.yaml`` since format 3, in the order they are written.
SETTINGS_GROUPS = ("target", "algorithm", "fidelity", "execution", "output")
#: The settings whose flat name (formats 1 and 2, and the command-line option) differs from their field:
#: (group, field) -> flat name. Every other field keeps its name.
SETTINGS_FLAT_NAMES = {
    ("target", "model"): "arch",
    ("fidelity", "mode"): "fidelity",
    ("algorithm", "name"): "algorithm",
}


def _csv(frame: pd.DataFrame) -> str:
    frame = frame.drop(columns=[c for c in frame.columns if str(c).startswith("_")])
    if "plan" in frame:
        frame = frame.assign(plan=[json.dumps(p, sort_keys=True, separators=(",", ":")) for p in frame["plan"]])
    return frame.to_csv(index=False, float_format="%.6g")


def write_tables(folder: str | os.PathLike[str], *, evaluations: pd.DataFrame | None = None,
                 history: pd.DataFrame | None = None, pareto: pd.DataFrame | None = None,
                 knees: dict[str, Any] | None = None) -> None:
    """Writes the given tables of a run folder atomically (a progress write passes only the first two).

    ``plan`` columns (dicts) are written as compact JSON; columns starting with ``_`` are internal and
    left out; floats keep 6 significant digits.
    """
    root = Path(folder)
    for name, frame in ((EVALUATIONS, evaluations), (HISTORY, history), (PARETO, pareto)):
        if frame is not None:
            atomic_write_text(root / name, _csv(frame))
    if knees is not None:
        atomic_write_json(root / KNEES, knees)


def write_config(folder: str | os.PathLike[str], config: dict[str, Any]) -> None:
    """Writes ``config.yaml`` with the current :data:`FORMAT_VERSION` first."""
    body = {"format_version": FORMAT_VERSION, **{k: v for k, v in config.items() if k != "format_version"}}
    atomic_write_text(Path(folder) / CONFIG, yaml.safe_dump(body, sort_keys=False))


def read_table(path: str | os.PathLike[str]) -> pd.DataFrame:
    """A table of a run folder, with ``plan`` parsed back to dicts and ``pareto`` to bools (empty: no rows)."""
    try:
        frame = pd.read_csv(path)
    except pd.errors.EmptyDataError:
        return pd.DataFrame()
    if "plan" in frame:
        frame["plan"] = [json.loads(p) if isinstance(p, str) else {} for p in frame["plan"]]
    if "pareto" in frame:
        frame["pareto"] = frame["pareto"].astype(bool)
    return frame


def format_version(config: dict[str, Any]) -> int:
    """The format version of a run's parsed ``config.yaml`` (1 when it records none)."""
    return int(config.get("format_version") or 1)


def flat_settings(config: dict[str, Any]) -> dict[str, Any]:
    """The ``settings`` of a run's parsed ``config.yaml`` as one flat dict keyed like the command-line
    options (``arch``, ``dataset``, ``pop_size``, ``fidelity``, ``eval_images``, ``precision``,
    ``split_seed``, ``report_on_search``, ``quick``, ...), whatever the format version: the nested
    settings of format 3 are flattened (:data:`SETTINGS_FLAT_NAMES`), the flat ones of formats 1 and 2
    returned as they are. Settings a run did not record are missing (readers use ``.get``).
    """
    settings = config.get("settings") or {}
    if not any(isinstance(settings.get(group), dict) for group in SETTINGS_GROUPS):
        return dict(settings)  # formats 1 and 2 (an old "fidelity" is the mode's name, not a group)
    flat = {k: v for k, v in settings.items() if k not in SETTINGS_GROUPS}
    for group in SETTINGS_GROUPS:
        for name, value in (settings.get(group) or {}).items():
            flat[SETTINGS_FLAT_NAMES.get((group, name), name)] = value
    return flat


def read_run(folder: str | os.PathLike[str]) -> dict[str, Any]:
    """The parsed files of a finished run: ``config``, ``evaluations``, ``pareto``, ``knees``, ``history``.

    Raises:
        DataNotFoundError: if the folder or one of :data:`REQUIRED` is missing (the message says how to
            finish the run).
        DataFormatError: if the folder was written in a newer version of the format.
    """
    path = Path(folder).expanduser()
    if not path.is_dir():
        raise DataNotFoundError(f"run folder {path} does not exist; pass a folder written by "
                                "'python -m moo_compress.search' (outputs/<run-name>)")
    missing = [f for f in REQUIRED if not (path / f).is_file()]
    if missing:
        raise DataNotFoundError(f"{path} is not a finished run: {', '.join(missing)} missing "
                                "(re-run the same search command to finish it; it resumes from the cache)")
    config = yaml.safe_load((path / CONFIG).read_text()) or {}
    if format_version(config) > FORMAT_VERSION:
        raise DataFormatError(f"{path} was written in run-folder format {format_version(config)}, newer than this "
                                f"moo_compress reads ({FORMAT_VERSION}); upgrade moo_compress")
    return {"config": config, "evaluations": read_table(path / EVALUATIONS), "pareto": read_table(path / PARETO),
            "knees": json.loads((path / KNEES).read_text()), "history": read_table(path / HISTORY)}
