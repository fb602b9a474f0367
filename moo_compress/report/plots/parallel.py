"""Parallel coordinates: which gene values the front uses, and what they cost or buy."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Colormap, Normalize
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from moo_compress.report.methods import method_style
from moo_compress.report.plots.common import Plans, column, split_plans
from moo_compress.report.plots.style import HIGHER_IS_BETTER, SHORT_LABELS, new_figure, no_data, save_figure
from moo_compress.report.rundata import RunData

__all__ = ["plot_parallel_coordinates", "gene_levels"]

_CLIP = 0.06  # how far beyond the front's span a worse plan's line may go before it is clipped
_FRONT_CMAP = "Blues"  # no green, red or orange: those mark the recommendations


def _is_off(value: Any) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value)) or str(value).lower() in ("off", "none")


def _number(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def gene_levels(kind: str, values: list[Any]) -> list[str]:
    """The distinct values of one gene as strings, weakest compression first (as the search orders
    them): ``off`` first, then sparsity ascending, cluster counts and bit-widths descending."""
    levels = {str(v) if not _is_off(v) else "off" for v in values}
    numbers = {lev: _number(lev) for lev in levels}
    on = sorted((lev for lev in levels if lev != "off" and numbers[lev] is not None), key=lambda lev: numbers[lev],
                reverse=kind != "sparsity")
    other = sorted(lev for lev in levels if lev != "off" and numbers[lev] is None)
    return (["off"] if "off" in levels else []) + on + other


def _choices(run: RunData, kind: str) -> list[Any]:
    """The space's choices of a gene kind, with 32-bit (full precision) shown as off like the genes."""
    spec = (run.config.get("space") or {}).get("genes", {}).get(kind)
    choices = spec.get("choices", []) if isinstance(spec, dict) else []
    return ["off" if kind.endswith("bits") and _number(c) == 32 else c for c in choices]


def _canonical(value: Any) -> str:
    """``0.5`` and ``"0.5"`` and ``8.0`` / ``"8"`` map to one level name."""
    if _is_off(value):
        return "off"
    number = _number(value)
    return f"{number:g}" if number is not None else str(value)


def _objective_axis(values: np.ndarray, focus: np.ndarray, metric: str) -> tuple[np.ndarray, list[tuple[float, str]]]:
    """``values`` scaled so that the ``focus`` values (the front and baseline) span [0, 1] with better
    up, clipped just beyond that span; and tick (position, text) pairs."""
    log = metric == "compression_ratio"

    def transform(a: np.ndarray) -> np.ndarray:
        a = np.asarray(a, float)
        return np.log2(np.clip(a, 1e-9, None)) if log else a

    finite = transform(focus)[np.isfinite(transform(focus))]
    lo, hi = (float(finite.min()), float(finite.max())) if len(finite) else (0.0, 1.0)
    if hi - lo < 1e-9:
        lo, hi = lo - 0.5, hi + 0.5
    higher = HIGHER_IS_BETTER.get(metric, True)
    scaled = (transform(values) - lo) / (hi - lo)
    scaled = np.clip(scaled if higher else 1 - scaled, -_CLIP, 1 + _CLIP)
    ticks = []
    for t in np.linspace(lo, hi, 5):
        text = f"{2 ** t:.3g}×" if log else f"{t:.3g}"
        pos = (t - lo) / (hi - lo)
        ticks.append((pos if higher else 1 - pos, text))
    return scaled, ticks


def plot_parallel_coordinates(run: RunData, path: str | os.PathLike[str] | None = None) -> Figure:
    """One vertical axis per gene (weakest compression at the bottom) and per objective (better at
    the top; batch-1 latency, fastest at the top, where it was an objective); one line per evaluated
    plan. Pareto plans are coloured by robustness, the other plans faded, the baseline dashed and the
    recommended plans drawn thick in their method's colour.

    Args:
        run: The run.
        path: Where to write the PNG.
    """
    plans = split_plans(run)
    genes = run.gene_columns
    metrics = run.objectives
    names = genes + metrics
    fig = new_figure(max(11.0, 1.15 * len(names) + 3), 6.4)
    ax = fig.add_subplot()
    if not genes or (plans.front.empty and plans.context.empty):
        no_data(ax, "no successfully evaluated plan with genes to draw")
        ax.set_axis_off()
        return save_figure(fig, path)
    columns, ticks, base_y = _gene_axes(run, plans, genes)
    _objective_axes(plans, metrics, columns, ticks, base_y)
    xs = np.arange(len(names))
    ctx = np.column_stack([columns["context"][n] for n in names]) if len(plans.context) else np.zeros((0, len(names)))
    for line in ctx:
        ax.plot(xs, line, color="0.7", lw=0.8, alpha=0.35, zorder=1, gid="context")
    front = np.column_stack([columns["front"][n] for n in names]) if len(plans.front) else np.zeros((0, len(names)))
    colours, norm = _draw_front(ax, xs, front, plans, run.robustness)
    pick_lines = _draw_picks(ax, xs, front, plans)
    if plans.baseline:
        ax.plot(xs, base_y, color="black", lw=1.4, ls="--", zorder=4, gid="baseline")
        ax.scatter(xs[len(genes):], base_y[len(genes):], marker="*", s=220, c="gold", edgecolors="black", zorder=6)
    _draw_axes(ax, xs, ticks, genes, metrics)
    _add_key(fig, ax, run, plans, colours, norm, pick_lines)
    return save_figure(fig, path)


def _gene_axes(run: RunData, plans: Plans, genes: list[str]
               ) -> tuple[dict[str, dict[str, np.ndarray]], list[list[tuple[float, str]]], list[float]]:
    """The gene axes: per frame (``context``, ``front``) each plan's jittered position on every gene
    axis, each axis's (position, level) ticks, and the baseline's (uncompressed) position on it."""
    frames = {"context": plans.context, "front": plans.front}
    rng = np.random.default_rng(0)
    columns: dict[str, dict[str, np.ndarray]] = {k: {} for k in frames}
    ticks: list[list[tuple[float, str]]] = []
    base_y: list[float] = []
    for name in genes:
        kind = name.rsplit("/", 1)[-1].rsplit(".", 1)[-1]
        seen = [v for f in frames.values() if name in f for v in f[name].tolist()] + _choices(run, kind)
        levels = gene_levels(kind, [_canonical(v) for v in seen])
        pos = {lev: (i / (len(levels) - 1) if len(levels) > 1 else 0.5) for i, lev in enumerate(levels)}
        for key, frame in frames.items():
            values = frame[name].map(_canonical) if name in frame else pd.Series(["off"] * len(frame))
            jitter = rng.uniform(-0.015, 0.015, len(frame))
            columns[key][name] = np.array([pos.get(v, np.nan) for v in values]) + jitter
        ticks.append([(p, lev) for lev, p in pos.items()])
        base_y.append(pos.get("off", pos.get("0", np.nan)))
    return columns, ticks, base_y


def _objective_axes(plans: Plans, metrics: list[str], columns: dict[str, dict[str, np.ndarray]],
                    ticks: list[list[tuple[float, str]]], base_y: list[float]) -> None:
    """Appends the objective axes (plans' positions, ticks, baseline) after the gene axes, in place."""
    for metric in metrics:
        focus = np.append(column(plans.front, metric), plans.baseline.get(metric, np.nan))
        if not np.isfinite(focus).any():
            focus = column(plans.context, metric)
        joint = np.concatenate([column(plans.context, metric), column(plans.front, metric),
                                [plans.baseline.get(metric, np.nan)]])
        scaled, axis_ticks = _objective_axis(joint, focus, metric)
        n_ctx, n_front = len(plans.context), len(plans.front)
        columns["context"][metric] = scaled[:n_ctx]
        columns["front"][metric] = scaled[n_ctx:n_ctx + n_front]
        base_y.append(float(scaled[-1]))
        ticks.append(axis_ticks)


def _draw_front(ax: Axes, xs: np.ndarray, front: np.ndarray, plans: Plans, rob: str) -> tuple[Colormap, Normalize]:
    """Draws the Pareto plans coloured by robustness; returns the colour map and its normalisation."""
    colours = colormaps[_FRONT_CMAP].resampled(256)
    colours = colours.from_list("front", colours(np.linspace(0.4, 1.0, 256)))
    values = column(plans.front, rob)
    finite = values[np.isfinite(values)]
    norm = Normalize(*(finite.min(), finite.max()) if len(finite) and np.ptp(finite) > 0 else
                     (finite.min() - 1, finite.max() + 1) if len(finite) else (0, 1))
    if not HIGHER_IS_BETTER.get(rob, True):
        colours = colours.reversed()
    for line, value in zip(front, values, strict=True):
        ax.plot(xs, line, color=colours(norm(value)) if np.isfinite(value) else "tab:blue", lw=1.6, alpha=0.9,
                zorder=3, gid="front")
    return colours, norm


def _draw_picks(ax: Axes, xs: np.ndarray, front: np.ndarray, plans: Plans) -> list[tuple[Line2D, str]]:
    """Draws the recommended plans thick in their method's colour; returns their legend entries."""
    pick_lines = []
    for row, recs in sorted(plans.picks.items()):
        i = int(np.flatnonzero(plans.front["row"].to_numpy() == row)[0])
        style = method_style(recs[0]["method"])
        ax.plot(xs, front[i], color=style.colour, lw=3.0, alpha=0.85, zorder=4, gid=f"pick:{recs[0]['method']}")
        ax.scatter(xs, front[i], marker=style.marker, s=40, c=style.colour, zorder=5)
        handle = Line2D([], [], color=style.colour, lw=3, marker=style.marker, ms=7)
        pick_lines.append((handle, f"{plans.label(row)}: {', '.join(method_style(r['method']).short for r in recs)}"))
    return pick_lines


def _draw_axes(ax: Axes, xs: np.ndarray, ticks: list[list[tuple[float, str]]], genes: list[str],
               metrics: list[str]) -> None:
    """The vertical axes with their tick texts, the shaded objective side and the axis names."""
    names = genes + metrics
    for x, axis_ticks in zip(xs, ticks, strict=True):
        ax.axvline(x, color="0.25", lw=1.0, zorder=0)
        for y, text in axis_ticks:
            ax.text(x - 0.04, y, text, ha="right", va="center", fontsize=7.5, color="0.2",
                    bbox={"boxstyle": "round,pad=0.1", "fc": "white", "ec": "none", "alpha": 0.8}, zorder=7)
    ax.axvspan(len(genes) - 0.5, len(names) - 0.5, color="0.93", zorder=-1)
    ax.set_xticks(xs)
    gene_names = [n.removeprefix("gene/").replace(".", "\n") + "\n(gene; stronger ↑)" for n in genes]
    metric_names = [f"{SHORT_LABELS.get(m, m)}\n(objective; better ↑)" for m in metrics]
    ax.set_xticklabels(gene_names + metric_names, fontsize=8)
    ax.set_xlim(-0.7, len(names) - 0.4)
    ax.set_ylim(-0.06, 1.06)
    ax.set_yticks([])
    for side in ("left", "right", "top"):
        ax.spines[side].set_visible(False)


def _add_key(fig: Figure, ax: Axes, run: RunData, plans: Plans, colours: Colormap, norm: Normalize,
             pick_lines: list[tuple[Line2D, str]]) -> None:
    """The colour bar, the legend and the title."""
    rob = run.robustness
    sm = ScalarMappable(norm=norm, cmap=colours)
    cbar = fig.colorbar(sm, ax=ax, pad=0.01, fraction=0.03)
    cbar.set_label(f"Pareto plans coloured by {SHORT_LABELS.get(rob, rob)} "
                   f"({'higher' if HIGHER_IS_BETTER.get(rob, True) else 'lower'} is better)", fontsize=8)
    handles = [(Line2D([], [], color="0.7", lw=1), f"other evaluated plans ({plans.context_fidelity})"),
               (Line2D([], [], color=colours(0.7), lw=1.6), f"Pareto set ({plans.front_fidelity})"),
               (Line2D([], [], color="black", ls="--", lw=1.4, marker="*", mfc="gold", mec="black", ms=11),
                "reference: the uncompressed model after the same recovery")]
    handles += pick_lines
    fig.legend([h for h, _ in handles], [t for _, t in handles], loc="outside lower center", ncol=2, fontsize=8,
               frameon=False)
    fig.suptitle(f"{run.name}: gene values (left, stronger compression higher up) against objectives (right, "
                 "better higher up)\neach objective axis spans the Pareto set and the baseline", fontsize=11)
