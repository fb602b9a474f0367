"""How the search converged: hypervolume and new evaluations per generation."""

from __future__ import annotations

import os

from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from moo_compress.report.plots.style import new_figure, no_data, save_figure
from moo_compress.report.rundata import RunData

__all__ = ["plot_hypervolume"]


def plot_hypervolume(run: RunData, path: str | os.PathLike[str] | None = None) -> Figure:
    """Hypervolume of the feasible front after every generation (a line that flattens means the
    search has converged), with the new and cached evaluations of each generation as bars.

    Args:
        run: The run.
        path: Where to write the PNG.
    """
    fig = new_figure(7.5, 4.6)
    ax = fig.add_subplot()
    hist = run.history
    if not len(hist) or "hypervolume" not in hist:
        no_data(ax, "no generation recorded")
        return save_figure(fig, path)
    gen = hist["generation"].to_numpy()
    bars = ax.twinx()
    new = hist["new"].to_numpy(float) if "new" in hist else gen * 0.0
    hits = hist["cache_hits"].to_numpy(float) if "cache_hits" in hist else new * 0
    bars.bar(gen, new - hits, width=0.6, color="tab:gray", alpha=0.3, label="new plans evaluated")
    bars.bar(gen, hits, bottom=new - hits, width=0.6, color="tab:green", alpha=0.3,
             label="new plans read from the cache")
    bars.set_ylabel("plans per generation (count)")
    bars.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_zorder(bars.get_zorder() + 1)
    ax.patch.set_visible(False)
    ax.plot(gen, hist["hypervolume"], marker="o", color="tab:blue", lw=2, label="hypervolume of the front",
            gid="hypervolume")
    if "front_size" in hist:
        for g, hv, size in zip(gen, hist["hypervolume"], hist["front_size"], strict=True):
            ax.annotate(f"{int(size)}", (g, hv), textcoords="offset points", xytext=(0, 7), ha="center", fontsize=7,
                        color="tab:blue")
    ax.set_xlabel("generation")
    ax.set_ylabel("hypervolume (normalised objectives) — higher is better")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    handles, texts = ax.get_legend_handles_labels()
    more_handles, more_texts = bars.get_legend_handles_labels()
    ax.legend(handles + more_handles, texts + more_texts, loc="lower right", fontsize=8)
    ax.set_title(f"{run.name}: convergence (numbers above points: plans on the front)", fontsize=10)
    return save_figure(fig, path)
