"""Reports of search runs: figures and tables read from a run folder, recomputing nothing.

>>> from moo_compress.report import load_run, render_run
>>> run = load_run("outputs/vgg19-default-seed0")
>>> render_run(run.path)   # summary.md and every figure
"""

from __future__ import annotations

import os
from pathlib import Path

from moo_compress.fileio import atomic_write_text
from moo_compress.report.plots import plot_hypervolume, plot_pairwise_fronts
from moo_compress.report.rundata import RunData, find_latest_run, load_run
from moo_compress.report.summary import summary_markdown

__all__ = ["RunData", "find_latest_run", "load_run", "plot_hypervolume", "plot_pairwise_fronts", "render_run",
           "summary_markdown"]

#: caption -> (file name, plotting function)
FIGURES = {
    "Pairwise fronts (baseline and recommendations marked)": ("fronts.png", plot_pairwise_fronts),
    "Hypervolume per generation": ("hypervolume.png", plot_hypervolume),
}


def render_run(path: str | os.PathLike[str]) -> list[Path]:
    """Writes ``summary.md`` and every figure of the run folder ``path``; returns the files written."""
    run = load_run(path)
    written = []
    for file, plot in FIGURES.values():
        plot(run, run.path / file)
        written.append(run.path / file)
    atomic_write_text(run.path / "summary.md", summary_markdown(run, {c: f for c, (f, _) in FIGURES.items()}))
    written.append(run.path / "summary.md")
    return written
