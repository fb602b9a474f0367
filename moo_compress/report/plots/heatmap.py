"""Which corruptions compression hurts: accuracy of each Pareto plan against the baseline."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.colors import TwoSlopeNorm
from matplotlib.figure import Figure

from moo_compress.report.methods import method_style
from moo_compress.report.plots.style import new_figure, no_data, save_figure
from moo_compress.report.rundata import RunData
from moo_compress.report.tables import corruption_accuracy, fidelity_text, recommendations_by_row, short_label

__all__ = ["plot_corruption_heatmap"]


def _panel(ax: Axes, delta: pd.DataFrame, baseline: pd.Series, norm: TwoSlopeNorm, title: str,
           annotate: bool) -> object:
    image = ax.imshow(delta.to_numpy(float), cmap="RdBu", norm=norm, aspect="auto", interpolation="nearest")
    ax.set_xticks(np.arange(delta.shape[1]))
    ax.set_xticklabels([f"{c.replace('_', ' ')}\n(reference {baseline[c]:.1f}%)" for c in delta.columns],
                       rotation=50, ha="right", fontsize=8, rotation_mode="anchor")
    ax.set_title(title, fontsize=10)
    if annotate:
        values = delta.to_numpy(float)
        for (i, j), v in np.ndenumerate(values):
            if np.isfinite(v):
                dark = abs(norm(v) - 0.5) > 0.3
                ax.text(j, i, f"{v:+.1f}", ha="center", va="center", fontsize=7, color="white" if dark else "black")
    ax.set_xticks(np.arange(delta.shape[1] + 1) - 0.5, minor=True)
    ax.set_yticks(np.arange(delta.shape[0] + 1) - 0.5, minor=True)
    ax.grid(which="minor", color="white", lw=0.8)
    ax.tick_params(which="minor", length=0)
    return image


def plot_corruption_heatmap(run: RunData, path: str | os.PathLike[str] | None = None) -> Figure:
    """Accuracy of every Pareto plan minus the baseline's, per corruption family (left) and per
    corruption (right), averaged over severities, at the best fidelity. Blue cells: the plan keeps
    or gains accuracy on that corruption; red cells: compression hurt it. Rows are Pareto rows
    (least compressed first), with their compression ratio and the recommendations that picked them.

    Args:
        run: The run.
        path: Where to write the PNG.
    """
    families, base_families = corruption_accuracy(run, by="family")
    corruptions, base_corruptions = corruption_accuracy(run, by="corruption")
    n_rows = len(families)
    fig = new_figure(max(10.0, 4.5 + 0.55 * (families.shape[1] + corruptions.shape[1])),
                     2.6 + 0.34 * max(n_rows, 2))
    if n_rows == 0 or (families.empty and corruptions.empty) or not run.baseline:
        ax = fig.add_subplot()
        ax.set_axis_off()
        no_data(ax, "no Pareto plan with per-corruption accuracy to show")
        return save_figure(fig, path)
    delta_f = families - base_families
    delta_c = corruptions - base_corruptions
    both = np.concatenate([delta_f.to_numpy(float).ravel(), delta_c.to_numpy(float).ravel()])
    vmax = max(float(np.nanmax(np.abs(both))) if np.isfinite(both).any() else 1.0, 1.0)
    norm = TwoSlopeNorm(vcenter=0.0, vmin=-vmax, vmax=vmax)
    panels = [(d, b, t) for d, b, t in ((delta_f, base_families, "per corruption family"),
                                        (delta_c, base_corruptions, "per corruption")) if d.shape[1]]
    axes = fig.subplots(1, len(panels), sharey=True, width_ratios=[max(d.shape[1], 2) for d, _, _ in panels])
    axes = np.atleast_1d(axes)
    annotate = n_rows <= 40
    image = None
    for ax, (delta, baseline, title) in zip(axes, panels, strict=True):
        image = _panel(ax, delta, baseline, norm, title, annotate)
    front = run.pareto
    picks = recommendations_by_row(run)
    ratio = front["final/compression_ratio" if run.has_final else "compression_ratio"].to_numpy(float)
    labels = []
    for row in families.index:
        tags = ", ".join(method_style(r["method"]).short for r in picks.get(int(row), []))
        labels.append(f"{short_label(front.loc[row, 'label'], int(row), max_len=30)}  ({ratio[row]:.1f}×)"
                      + (f"  [{tags}]" if tags else ""))
    axes[0].set_yticks(np.arange(n_rows))
    axes[0].set_yticklabels(labels, fontsize=8)
    for tick, row in zip(axes[0].get_yticklabels(), families.index, strict=True):
        if int(row) in picks:
            tick.set_fontweight("bold")
    axes[0].set_ylabel("Pareto plan (#row of pareto.csv, compression ratio)")
    cbar = fig.colorbar(image, ax=list(axes), pad=0.01, fraction=0.04)
    cbar.set_label("accuracy − reference accuracy (points)\nhigher is better (blue)", fontsize=8)
    fig.suptitle(f"{run.name}: accuracy under corruptions relative to the uncompressed baseline\n"
                 f"(mean over severities, {fidelity_text(run)}; column labels give the baseline's accuracy)",
                 fontsize=11)
    return save_figure(fig, path)
