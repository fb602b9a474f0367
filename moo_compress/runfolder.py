"""The run-folder format, in one place: file names, how tables are written and read, the format version.

A run folder holds ``config.yaml`` (settings, resolved space, provenance, ``format_version``),
``evaluations.csv`` (one row per plan measured), ``pareto.csv`` (the selected front, ``select/*`` and
``final/*`` columns), ``knees.json`` (reference and original metrics, recommendations) and
``history.csv`` (one row per generation); ``summary.md`` and the figures are rendered from those.
The search writes through :func:`write_tables` / :func:`write_config`, :mod:`moo_compress.report`
reads through :func:`read_run`, and tests build folders with the same writer. Folders written before
the format was versioned (no ``format_version``) read as version 1 and open unchanged.
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
           "METRIC_COLUMNS", "write_tables", "write_config", "read_table", "read_run", "format_version"]

#: Version of the run-folder format written now (1: folders written before it was recorded).
FORMAT_VERSION = 2
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
