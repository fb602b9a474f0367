"""Reports of search runs: figures and tables read from a run folder, recomputing nothing.

>>> from moo_compress.report import load_run, render_run, plot_pairwise_fronts
>>> run = load_run("outputs/vgg19-default-seed0")
>>> plot_pairwise_fronts(run)      # a Figure (shown inline in Jupyter)
>>> render_run(run.path)           # summary.md and every figure, written into the run folder

This package reads the files the search writes and never imports :mod:`moo_compress.search`
(the search calls :func:`render_run` at the end of every run).
"""

from __future__ import annotations

import os
from pathlib import Path

from moo_compress.fileio import atomic_write_text
from moo_compress.report.figures import FIGURES, FigureSpec
from moo_compress.report.plots import (
    plot_accuracy_vs_robustness,
    plot_corruption_heatmap,
    plot_front_3d,
    plot_hypervolume,
    plot_pairwise_fronts,
    plot_parallel_coordinates,
)
from moo_compress.report.rundata import RUN_ENV, RunData, find_latest_run, load_run, resolve_run
from moo_compress.report.sortable import SortableTable, sortable_table
from moo_compress.report.summary import summary_markdown
from moo_compress.report.tables import (
    corruption_accuracy,
    fidelity_text,
    front_metrics,
    pareto_table,
    recommendations_table,
)

__all__ = [
    "FIGURES",
    "FigureSpec",
    "RUN_ENV",
    "RunData",
    "SortableTable",
    "corruption_accuracy",
    "fidelity_text",
    "find_latest_run",
    "front_metrics",
    "load_run",
    "pareto_table",
    "plot_accuracy_vs_robustness",
    "plot_corruption_heatmap",
    "plot_front_3d",
    "plot_hypervolume",
    "plot_pairwise_fronts",
    "plot_parallel_coordinates",
    "recommendations_table",
    "render_run",
    "resolve_run",
    "sortable_table",
    "summary_markdown",
]


def render_run(path: str | os.PathLike[str]) -> list[Path]:
    """Writes ``summary.md`` and every figure of :data:`FIGURES` into the run folder ``path``.

    Returns:
        The files written.

    Raises:
        DataNotFoundError: if ``path`` is not a finished run folder.
    """
    run = load_run(path)
    written = []
    for spec in FIGURES:
        spec.plot(run, run.path / spec.file)
        written.append(run.path / spec.file)
    atomic_write_text(run.path / "summary.md", summary_markdown(run, FIGURES))
    written.append(run.path / "summary.md")
    return written
