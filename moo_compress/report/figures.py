"""The figures of a report: file name, caption, what each shows, and the function that draws it."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

from matplotlib.figure import Figure

from moo_compress.report.plots import (
    plot_accuracy_vs_robustness,
    plot_corruption_heatmap,
    plot_front_3d,
    plot_held_out,
    plot_hypervolume,
    plot_pairwise_fronts,
    plot_parallel_coordinates,
)
from moo_compress.report.rundata import RunData

__all__ = ["FigureSpec", "FIGURES"]


@dataclass(frozen=True)
class FigureSpec:
    """One figure of the report.

    Attributes:
        file: PNG file name in the run folder.
        caption: Its title in ``summary.md``.
        description: What it shows, one or two sentences for the reader of ``summary.md``.
        plot: ``plot(run, path) -> Figure``.
        latency: ``latency(run, description)``: the description for a run, telling what the figure shows
            of its latency (``description`` itself where it shows none); None: the figure never shows latency.
    """

    file: str
    caption: str
    description: str
    plot: Callable[[RunData, str | os.PathLike[str] | None], Figure]
    latency: Callable[[RunData, str], str] | None = None

    def describe(self, run: RunData) -> str:
        """The description of the figure of ``run`` (with what it shows of the run's latency)."""
        return self.latency(run, self.description) if self.latency is not None else self.description


def _fronts_latency(run: RunData, description: str) -> str:
    if not run.latency_objective:
        return description
    return (f"{description} With batch-1 latency as a fourth objective, the second row plots clean accuracy, "
            "robustness and compression ratio against latency (milliseconds, reversed so that faster is to the "
            "right; its bars: the interquartile range of the timed runs).")


def _front3d_latency(run: RunData, description: str) -> str:
    if not run.latency_objective:
        return description
    return ("The Pareto set in clean accuracy, robustness and compression ratio, coloured by batch-1 latency (the "
            "fourth objective, milliseconds; darker is faster), numbered by its row in the table above.")


def _parallel_latency(run: RunData, description: str) -> str:
    if not run.latency_objective:
        return description
    return f"{description} The last axis is batch-1 latency (milliseconds, faster higher up)."


def _scatter_latency(run: RunData, description: str) -> str:
    if not run.measures_latency:
        return description
    limit = run.latency_settings.get("max_latency_ms")
    return (f"{description} Right: clean accuracy against batch-1 latency measured on this machine (milliseconds, "
            "reversed so that faster is to the right)"
            + (f"; the dashed line is the space's limit of {float(limit):g} ms" if limit is not None else "") + ".")


#: Every figure of the report, in the order of ``summary.md``.
FIGURES = (
    FigureSpec("fronts.png", "Pairwise fronts",
               "Each pair of objectives, oriented so that better is up and to the right: the Pareto set (blue), the "
               "other evaluated plans (grey), the reference (star: the uncompressed model after the same "
               "recovery), paired 95% intervals of the report split as bars, plans dominated on the report split "
               "crossed, and the recommended plans (circled, labelled `#row plan`).", plot_pairwise_fronts,
               _fronts_latency),
    FigureSpec("front3d.png", "3-D front",
               "The Pareto set in all three objectives at once, numbered by its row in the table above.",
               plot_front_3d, _front3d_latency),
    FigureSpec("parallel.png", "Genes against objectives",
               "Parallel coordinates: which sparsity, cluster count and bit-width each plan uses (stronger "
               "compression higher up) and what it scores (better higher up).", plot_parallel_coordinates,
               _parallel_latency),
    FigureSpec("corruptions.png", "Accuracy per corruption relative to the reference",
               "For every Pareto plan, the change in accuracy against the reference per corruption family "
               "and per corruption (red: compression hurt robustness to that corruption).", plot_corruption_heatmap),
    FigureSpec("accuracy_robustness.png", "Clean accuracy vs. robustness",
               "Clean accuracy against robustness for every evaluated plan, coloured by compression ratio.",
               plot_accuracy_vs_robustness, _scatter_latency),
    FigureSpec("heldout.png", "Searched vs. held-out robustness",
               "For the plans measured on corruptions the search never saw (the recommendations by default): "
               "their mean-corruption-accuracy change against the reference on the searched corruptions (x) and "
               "on the held-out ones (y), with paired 95% intervals; on the dashed diagonal a plan keeps on unseen "
               "corruptions what it showed on the searched ones; red = robustness rank reversed (flagged).",
               plot_held_out),
    FigureSpec("hypervolume.png", "Convergence",
               "Hypervolume of the front after each generation (flat = converged), with the plans evaluated per "
               "generation.", plot_hypervolume),
)
