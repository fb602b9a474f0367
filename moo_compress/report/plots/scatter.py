"""Clean accuracy against robustness (and against batch-1 latency where the run measured it), every plan
coloured by its compression ratio."""

from __future__ import annotations

import os

import numpy as np
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.collections import PathCollection
from matplotlib.colors import Colormap, LogNorm, Normalize
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from moo_compress.report.plots.common import (
    BASELINE_STYLE,
    Plans,
    baseline_handle,
    column,
    draw_picks,
    pick_handles,
    pick_labels,
    split_plans,
)
from moo_compress.report.plots.style import (
    HIGHER_IS_BETTER,
    axis_label,
    front_view,
    new_figure,
    no_data,
    place_labels,
    save_figure,
)
from moo_compress.report.rundata import RunData

__all__ = ["plot_accuracy_vs_robustness"]


def _panel(ax: Axes, plans: Plans, x: str, y: str, *, norm: Normalize, cmap: Colormap) -> PathCollection:
    """Plans of ``y`` against ``x`` coloured by compression ratio; returns the front's points (for the colour bar)."""
    ax.scatter(column(plans.context, x), column(plans.context, y), c=column(plans.context, "compression_ratio"),
               cmap=cmap, norm=norm, s=22, alpha=0.45, linewidths=0, zorder=2, gid="context")
    image = ax.scatter(column(plans.front, x), column(plans.front, y), c=column(plans.front, "compression_ratio"),
                       cmap=cmap, norm=norm, s=70, edgecolors="black", linewidths=0.8, zorder=4, gid="front")
    base = plans.baseline
    bx, by = base.get(x, np.nan), base.get(y, np.nan)
    if base:
        ax.scatter([bx], [by], **BASELINE_STYLE)
    draw_picks(ax, plans, x, y, size=190)
    fx, fy = column(plans.front, x), column(plans.front, y)
    hidden = front_view(ax, x, y, focus=(np.append(fx, bx), np.append(fy, by)),
                        context=(column(plans.context, x), column(plans.context, y)))
    for name, invert in ((x, ax.invert_xaxis), (y, ax.invert_yaxis)):
        if not HIGHER_IS_BETTER.get(name, True):
            invert()
    if hidden:
        ax.text(0.01, 0.01, f"+{hidden} dominated plan{'s' if hidden > 1 else ''} outside this view",
                transform=ax.transAxes, fontsize=8, color="0.4", va="bottom")
    if plans.front.empty and plans.context.empty:
        no_data(ax, "no candidate evaluated successfully")
    ax.set_xlabel(axis_label(x) + (" (reversed)" if not HIGHER_IS_BETTER.get(x, True) else ""))
    ax.set_ylabel(axis_label(y) + (" (reversed)" if not HIGHER_IS_BETTER.get(y, True) else ""))
    ax.grid(alpha=0.3)
    return image


def plot_accuracy_vs_robustness(run: RunData, path: str | os.PathLike[str] | None = None) -> Figure:
    """Clean accuracy (x) against robustness (y), coloured by compression ratio (log colour scale);
    where the run measured latency, a second panel of clean accuracy (y) against batch-1 latency (x,
    faster to the right) with the space's latency limit, if any, as a dashed line.

    Pareto plans are large with a black edge (best fidelity), the other plans small and faded
    (screening fidelity); the baseline is a star and the recommended plans are circled by method.
    Plans above the diagonal trend keep more robustness than their clean accuracy suggests.

    Args:
        run: The run.
        path: Where to write the PNG.
    """
    plans = split_plans(run)
    rob = run.robustness
    latency = run.measures_latency
    fig = new_figure(17.0 if latency else 9.5, 7.2)
    axes = fig.subplots(1, 2 if latency else 1, squeeze=False)[0]
    ratios = np.concatenate([column(plans.front, "compression_ratio"), column(plans.context, "compression_ratio")])
    ratios = ratios[np.isfinite(ratios) & (ratios > 0)]
    lo, hi = (float(ratios.min()), float(ratios.max())) if len(ratios) else (1.0, 2.0)
    norm = LogNorm(lo, hi) if hi > lo * 1.01 else Normalize(lo - 0.5, hi + 0.5)
    cmap = colormaps["plasma"]
    pairs = [("clean_accuracy", rob)] + ([("latency_ms", "clean_accuracy")] if latency else [])
    images = [_panel(ax, plans, x, y, norm=norm, cmap=cmap) for ax, (x, y) in zip(axes, pairs, strict=True)]
    cbar = fig.colorbar(images[0], ax=list(axes), pad=0.01)
    cbar.set_label("compression ratio (×, log colour scale) — higher is better", fontsize=9)
    if isinstance(norm, LogNorm):
        cbar.ax.yaxis.set_major_locator(LogLocator(base=2))
        cbar.ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}×"))
        cbar.ax.yaxis.set_minor_formatter(NullFormatter())
    limit = run.latency_settings.get("max_latency_ms") if latency else None
    if limit is not None:
        axes[1].axvline(float(limit), color="crimson", ls="--", lw=1.2, zorder=3, gid="latency-limit",
                        label=f"latency limit of the search space ({float(limit):g} ms)")
        axes[1].legend(loc="lower left", fontsize=7.5, framealpha=0.9)
    for ax, (x, y) in zip(axes, pairs, strict=True):
        obstacles = list(zip(column(plans.front, x), column(plans.front, y), strict=True))
        place_labels(ax, pick_labels(plans, x, y), obstacles=obstacles)
    handles = [(Line2D([], [], ls="none", marker="o", ms=5, color="0.6", alpha=0.6),
                f"other evaluated plans ({plans.context_fidelity})"),
               (Line2D([], [], ls="none", marker="o", ms=8, mfc="0.6", mec="black"),
                f"Pareto set ({plans.front_fidelity})"),
               (baseline_handle(), "reference: the uncompressed model after the same recovery")] + pick_handles(plans)
    axes[0].legend([h for h, _ in handles], [t for _, t in handles], loc="best", fontsize=7.5, framealpha=0.9)
    if latency:
        axes[0].set_title("clean accuracy vs. robustness", fontsize=10)
        axes[1].set_title("clean accuracy vs. batch-1 latency measured on this machine", fontsize=10)
        fig.suptitle(f"{run.name}: coloured by compression ratio (better is up and to the right)", fontsize=11)
    else:
        axes[0].set_title(f"{run.name}: clean accuracy vs. robustness, coloured by compression ratio\n"
                          "(better is up and to the right)", fontsize=11)
    return save_figure(fig, path)
