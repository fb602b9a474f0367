"""The front itself: every pair of objectives in 2-D, and three of them in 3-D (a fourth, latency, as colour)."""

from __future__ import annotations

import itertools
import math
import os

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from moo_compress.report.methods import method_style
from moo_compress.report.plots.common import (
    BASELINE_STYLE,
    FRONT_COLOUR,
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
    SHORT_LABELS,
    axis_label,
    front_view,
    new_figure,
    no_data,
    place_labels,
    ratio_axis,
    save_figure,
)
from moo_compress.report.rundata import RunData

__all__ = ["plot_pairwise_fronts", "plot_front_3d", "front_2d"]


def front_2d(x: np.ndarray, y: np.ndarray, *, x_higher: bool = True, y_higher: bool = True) -> np.ndarray:
    """Indices of the points no other point beats in both ``x`` and ``y``, sorted by ``x``."""
    gx, gy = (np.asarray(x, float) * (1 if x_higher else -1), np.asarray(y, float) * (1 if y_higher else -1))
    ok = np.flatnonzero(np.isfinite(gx) & np.isfinite(gy))
    keep = [i for i in ok
            if not any(gx[j] >= gx[i] and gy[j] >= gy[i] and (gx[j] > gx[i] or gy[j] > gy[i]) for j in ok)]
    return np.array(sorted(set(keep), key=lambda i: x[i]), dtype=int)


def _staircase(x: np.ndarray, y: np.ndarray, x_higher: bool, y_higher: bool) -> tuple[np.ndarray, np.ndarray]:
    """The boundary of what the 2-D front dominates: the points joined through their worse corners."""
    xs, ys = [x[0]], [y[0]]
    for i in range(1, len(x)):
        worse_x = min(x[i - 1], x[i]) if x_higher else max(x[i - 1], x[i])
        worse_y = min(y[i - 1], y[i]) if y_higher else max(y[i - 1], y[i])
        xs += [worse_x, x[i]]
        ys += [worse_y, y[i]]
    return np.array(xs), np.array(ys)


#: The interval column (paired, against the reference) behind each plotted metric.
_INTERVALS = {"clean_accuracy": "clean_delta", "mean_corruption_accuracy": "mca_delta", "mce": "mce",
              "relative_mce": "relative_mce"}
#: The spread of a measured metric: (estimate, low, high) columns. Latency's is the interquartile range of
#: the timed runs, not a confidence interval (the legend says so).
_SPREADS = {"latency_ms": ("latency_ms", "latency_low_ms", "latency_high_ms")}


def _errors(front: pd.DataFrame, metric: str) -> np.ndarray | None:
    """``(2, n)`` error-bar lengths of the front's 95% intervals (latency: interquartile range) for ``metric``,
    or None without them."""
    if metric in _SPREADS:
        columns = _SPREADS[metric]
    elif metric in _INTERVALS:
        name = _INTERVALS[metric]
        columns = (name, f"{name}_low", f"{name}_high")
    else:
        return None
    if columns[1] not in front:
        return None
    est, low, high = (front[c].to_numpy(float) for c in columns)
    return np.nan_to_num(np.vstack([est - low, high - est]), nan=0.0).clip(min=0.0)


#: Colour map of latency: dark blue = fast to pale = slow (no red, green, orange or purple: those mark the
#: recommendations; no yellow: the reference's star).
_LATENCY_CMAP = ListedColormap(colormaps["Blues_r"](np.linspace(0.0, 0.75, 256)), name="latency")


def _pairs(objectives: list[str]) -> list[tuple[str, str]]:
    """Every ``(x, y)`` pair of objectives: those without latency first (the three panels of a run without
    it), then each other objective against latency on x, as accuracy-latency trade-offs are usually drawn."""
    pairs = list(itertools.combinations(objectives, 2))
    plain = [pair for pair in pairs if "latency_ms" not in pair]
    return plain + [("latency_ms", x) for x, y in pairs if y == "latency_ms"]


def _pair(ax: Axes, plans: Plans, x: str, y: str) -> None:
    front, ctx = plans.front, plans.context
    fx, fy = column(front, x), column(front, y)
    ax.scatter(column(ctx, x), column(ctx, y), s=16, c="0.72", alpha=0.65, linewidths=0, zorder=2, gid="context")
    hx, hy = HIGHER_IS_BETTER.get(x, True), HIGHER_IS_BETTER.get(y, True)
    best = front_2d(fx, fy, x_higher=hx, y_higher=hy)
    if len(best) > 1:
        sx, sy = _staircase(fx[best], fy[best], hx, hy)
        ax.plot(sx, sy, ls="--", lw=1.0, color=FRONT_COLOUR, alpha=0.7, zorder=3, gid="front-2d")
    xerr, yerr = _errors(front, x), _errors(front, y)
    if xerr is not None or yerr is not None:
        ax.errorbar(fx, fy, xerr=xerr, yerr=yerr, fmt="none", ecolor=FRONT_COLOUR, elinewidth=0.9, alpha=0.55,
                    capsize=2, zorder=3, gid="intervals")
    ax.scatter(fx, fy, s=40, c=FRONT_COLOUR, edgecolors="black", linewidths=0.5, zorder=4, gid="front")
    if "dominated_on_report_by" in front:
        flagged = front["dominated_on_report_by"].notna().to_numpy()
        if flagged.any():
            ax.scatter(fx[flagged], fy[flagged], s=70, marker="x", c="crimson", linewidths=1.2, zorder=6,
                       gid="dominated-on-report")
    base = plans.baseline
    bx, by = base.get(x, np.nan), base.get(y, np.nan)
    if base:
        ax.scatter([bx], [by], **BASELINE_STYLE)
    draw_picks(ax, plans, x, y)
    if x == "compression_ratio":
        ratio_axis(ax, "x")
    if y == "compression_ratio":
        ratio_axis(ax, "y")
    hidden = front_view(ax, x, y, focus=(np.append(fx, bx), np.append(fy, by)),
                        context=(column(ctx, x), column(ctx, y)))
    if not hx:
        ax.invert_xaxis()
    if not hy:
        ax.invert_yaxis()
    if hidden:
        ax.text(0.01, 0.01, f"+{hidden} dominated plan{'s' if hidden > 1 else ''} outside this view",
                transform=ax.transAxes, fontsize=7.5, color="0.4", va="bottom")
    ax.set_xlabel(axis_label(x) + (" (reversed)" if not hx else ""))
    ax.set_ylabel(axis_label(y) + (" (reversed)" if not hy else ""))
    ax.set_title(f"{SHORT_LABELS.get(y, y)} vs. {SHORT_LABELS.get(x, x)}", fontsize=10)
    ax.grid(alpha=0.3, which="major")


def plot_pairwise_fronts(run: RunData, path: str | os.PathLike[str] | None = None) -> Figure:
    """One panel per pair of objectives (three; six in two rows with latency as a fourth objective, the
    second row latency against each other objective), oriented so that better is up and to the right.

    The Pareto set is drawn at the best fidelity (final where the run re-evaluated it), the other
    evaluated plans faded at screening fidelity (the only one they have), a dashed
    staircase through the plans that are best in that pair, the baseline as a star and the
    recommended plans circled by method and labelled ``#row plan``.

    Args:
        run: The run.
        path: Where to write the PNG (nothing is written when None).
    """
    plans = split_plans(run)
    pairs = _pairs(run.objectives)
    rows = math.ceil(len(pairs) / 3)
    fig = new_figure(17, 6.2 if rows == 1 else 5.0 * rows + 1.2)
    axes = np.ravel(fig.subplots(rows, 3))
    for ax, (x, y) in zip(axes, pairs, strict=False):
        _pair(ax, plans, x, y)
        if plans.front.empty and plans.context.empty:
            no_data(ax, "no candidate evaluated successfully")
    for ax, (x, y) in zip(axes, pairs, strict=False):
        obstacles = list(zip(column(plans.front, x), column(plans.front, y), strict=True))
        place_labels(ax, pick_labels(plans, x, y), obstacles=obstacles)
    handles = [
        (Line2D([], [], ls="none", marker="o", ms=5, color="0.72"),
         f"other evaluated plans ({plans.context_fidelity})"),
        (Line2D([], [], ls="none", marker="o", ms=7, mfc=FRONT_COLOUR, mec="black"),
         f"Pareto set ({plans.front_fidelity})"),
    ]
    if len(plans.front) > 1:
        handles.append((Line2D([], [], ls="--", color=FRONT_COLOUR), "best trade-offs of the pair shown (2-D front)"))
    if "clean_delta_low" in plans.front:
        handles.append((Line2D([], [], ls="-", color=FRONT_COLOUR, alpha=0.55),
                        "paired 95% interval against the reference (report images)"))
    if any("latency_ms" in pair for pair in pairs) and "latency_low_ms" in plans.front:
        handles.append((Line2D([], [], ls="-", color=FRONT_COLOUR, alpha=0.55),
                        "latency: interquartile range of the timed batch-1 runs (this machine)"))
    if "dominated_on_report_by" in plans.front and plans.front["dominated_on_report_by"].notna().any():
        handles.append((Line2D([], [], ls="none", marker="x", color="crimson"), "dominated on the report split"))
    handles.append((baseline_handle(), "reference: the uncompressed model after the same recovery"))
    handles += pick_handles(plans)
    fig.legend([h for h, _ in handles], [t for _, t in handles], loc="outside lower center", ncol=2, fontsize=8,
               frameon=False)
    failed = f"; {plans.failed} failed candidate{'s' if plans.failed != 1 else ''} not shown" if plans.failed else ""
    fig.suptitle(f"{run.name}: trade-offs between objectives (better is up and to the right)\n"
                 f"{len(run.ok)} plans evaluated, {len(plans.front)} on the Pareto front{failed}", fontsize=11)
    return save_figure(fig, path)


def plot_front_3d(run: RunData, path: str | os.PathLike[str] | None = None, *, elev: float = 22,
                  azim: float = -55) -> Figure:
    """The Pareto set in 3-D (compression ratio, clean accuracy, robustness) at the best fidelity:
    each plan on a stem down to the floor, numbered by its row of ``pareto.csv``, the baseline as a
    star and the recommended plans marked by method. Where batch-1 latency is a fourth objective the
    plans are coloured by it (colour bar in milliseconds).

    Args:
        run: The run.
        path: Where to write the PNG.
        elev: Camera elevation (degrees).
        azim: Camera azimuth (degrees).
    """
    plans = split_plans(run)
    rob = run.robustness
    fig = new_figure(9, 7.5)
    ax = fig.add_subplot(projection="3d")
    front, base = plans.front, plans.baseline
    lx = np.log2(np.clip(column(front, "compression_ratio"), 1e-9, None))
    acc, robust = column(front, "clean_accuracy"), column(front, rob)
    points = [(lx, acc, robust)]
    if base:
        points.append((np.log2([max(base.get("compression_ratio", 1.0), 1e-9)]), [base.get("clean_accuracy", np.nan)],
                       [base.get(rob, np.nan)]))
    all_z = np.concatenate([np.asarray(p[2], float) for p in points])
    floor = np.nanmin(all_z) - 0.05 * max(np.nanmax(all_z) - np.nanmin(all_z), 1.0) if np.isfinite(all_z).any() else 0
    if not HIGHER_IS_BETTER.get(rob, True) and np.isfinite(all_z).any():
        floor = np.nanmax(all_z) + 0.05 * max(np.nanmax(all_z) - np.nanmin(all_z), 1.0)
    for x, y, z in zip(lx, acc, robust, strict=True):
        ax.plot([x, x], [y, y], [floor, z], color=FRONT_COLOUR, lw=0.8, alpha=0.45)
    latency = run.latency_objective
    colour = {"c": column(front, "latency_ms"), "cmap": _LATENCY_CMAP} if latency else {"c": FRONT_COLOUR}
    points = ax.scatter(lx, acc, robust, s=45, edgecolors="black", linewidths=0.5, depthshade=False, gid="front",
                        label=f"Pareto set ({plans.front_fidelity})", **colour)
    ax.scatter(lx, acc, np.full(len(lx), floor), s=8, c="0.6", depthshade=False)
    for row, x, y, z in zip(front["row"], lx, acc, robust, strict=True):
        ax.text(x, y, z, f"  #{row}", fontsize=7.5, color="0.15")
    if base:
        bx = np.log2(max(base.get("compression_ratio", 1.0), 1e-9))
        ax.scatter([bx], [base.get("clean_accuracy", np.nan)], [base.get(rob, np.nan)], marker="*", s=300, c="gold",
                   gid="baseline", edgecolors="black", linewidths=0.9, depthshade=False,
                   label="reference: the uncompressed model after the same recovery")
    for row, recs in plans.picks.items():
        i = int(np.flatnonzero(front["row"].to_numpy() == row)[0])
        for k, rec in enumerate(recs):
            style = method_style(rec["method"])
            ax.scatter([lx[i]], [acc[i]], [robust[i]], marker=style.marker, s=150 * (1 + 0.6 * (len(recs) - 1 - k)),
                       facecolors="none", edgecolors=style.colour, linewidths=1.8, depthshade=False,
                       gid=f"pick:{rec['method']}")
    if front.empty:
        no_data(ax, "no plan on the front")
    ticks = np.arange(np.floor(np.nanmin(np.append(lx, 0))), np.ceil(np.nanmax(np.append(lx, 1))) + 1)
    ax.set_xticks(ticks)
    ax.set_xticklabels([f"{2 ** t:g}×" for t in ticks])
    ax.set_xlabel("compression ratio (×, log scale)\nhigher is better", fontsize=9, labelpad=8)
    ax.set_ylabel("clean accuracy (%)\nhigher is better", fontsize=9, labelpad=8)
    zlabel = axis_label(rob).replace(" — ", "\n")
    ax.set_zlabel(zlabel, fontsize=9, labelpad=8)
    if not HIGHER_IS_BETTER.get(rob, True):
        ax.invert_zaxis()
    if latency:
        cbar = fig.colorbar(points, ax=ax, pad=0.08, shrink=0.6)
        cbar.set_label(axis_label("latency_ms"), fontsize=9)
    ax.view_init(elev=elev, azim=azim)
    handles, texts = ax.get_legend_handles_labels()
    for handle, text in pick_handles(plans):
        handles.append(handle)
        texts.append(text)
    fig.legend(handles, texts, loc="outside lower center", ncol=1, fontsize=8, frameon=False)
    shown = "four objectives (colour: batch-1 latency)" if latency else "three objectives"
    fig.suptitle(f"{run.name}: the Pareto front in {shown}\n(numbers are rows of pareto.csv; grey dots "
                 "are the plans' shadows on the floor)", fontsize=11)
    return save_figure(fig, path)
