"""Searched against held-out robustness of the plans measured on both, with their paired intervals."""

from __future__ import annotations

import os

import numpy as np
from matplotlib.figure import Figure

from moo_compress.report.plots.style import new_figure, no_data, save_figure
from moo_compress.report.rundata import RunData

__all__ = ["plot_held_out"]


def plot_held_out(run: RunData, path: str | os.PathLike[str] | None = None) -> Figure:
    """Mean-corruption-accuracy delta against the reference on the searched corruptions (x) and on the
    held-out ones (y), points with paired 95% intervals as bars, one per measured plan (labelled by row);
    flagged plans (robustness rank reversed beyond the intervals) in red. Points on the diagonal keep on
    unseen corruptions what they showed on the searched ones.

    Args:
        run: The run.
        path: Where to write the PNG.
    """
    fig = new_figure(7.5, 6.5)
    ax = fig.add_subplot()
    front = run.pareto
    needed = ("heldout/mca_delta", "final/mca_delta", "final/mca_delta_low", "final/mca_delta_high")
    if not all(c in front for c in needed) or not front["heldout/mca_delta"].notna().any():
        no_data(ax, "no plan was measured on held-out corruptions (--held-out off, or nothing is held out)")
        return save_figure(fig, path)
    rows = front[front["heldout/mca_delta"].notna()]
    x, y = rows["final/mca_delta"].to_numpy(float), rows["heldout/mca_delta"].to_numpy(float)
    xerr = np.abs(np.vstack([x - rows["final/mca_delta_low"], rows["final/mca_delta_high"] - x]))
    yerr = np.abs(np.vstack([y - rows["heldout/mca_delta_low"], rows["heldout/mca_delta_high"] - y]))
    flagged = rows.get("heldout/rank_reversal")
    red = np.array([isinstance(v, str) for v in (flagged if flagged is not None else [None] * len(rows))])
    for mask, colour, name in ((~red, "tab:blue", "measured plan"), (red, "tab:red", "rank reversed (flagged)")):
        if mask.any():
            ax.errorbar(x[mask], y[mask], xerr=xerr[:, mask], yerr=yerr[:, mask], fmt="o", color=colour,
                        ecolor=colour, alpha=0.85, capsize=3, label=name)
    for i, xi, yi in zip(rows.index, x, y, strict=True):
        ax.annotate(f"#{i}", (xi, yi), textcoords="offset points", xytext=(5, 5), fontsize=8)
    lo = float(np.nanmin(np.concatenate([x - xerr[0], y - yerr[0], [0.0]])))
    hi = float(np.nanmax(np.concatenate([x + xerr[1], y + yerr[1], [0.0]])))
    pad = 0.05 * max(hi - lo, 1.0)
    ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], color="0.6", lw=1, ls="--", label="same on both")
    ax.axhline(0, color="0.8", lw=0.8)
    ax.axvline(0, color="0.8", lw=0.8)
    ax.set_xlim(lo - pad, hi + pad)
    ax.set_ylim(lo - pad, hi + pad)
    ax.set_xlabel("mean corruption accuracy Δ vs. reference, searched corruptions (points, higher is better)")
    ax.set_ylabel("… on held-out corruptions (points, higher is better)")
    ax.legend(loc="best", fontsize=8)
    return save_figure(fig, path)
