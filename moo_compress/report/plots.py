"""Figures of a search run, drawn from its files alone.

Every axis label carries its unit and the direction of better; the baseline and the recommended
plans are marked on every front.
"""

from __future__ import annotations

import itertools
from pathlib import Path


import matplotlib

matplotlib.use("Agg", force=False)
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from moo_compress.report.rundata import RunData  # noqa: E402

__all__ = ["LABELS", "plot_pairwise_fronts", "plot_hypervolume", "KNEE_STYLES"]

LABELS = {
    "clean_accuracy": "clean accuracy (%) — higher is better",
    "mean_corruption_accuracy": "mean corruption accuracy (%) — higher is better",
    "mce": "mCE vs. baseline (%) — lower is better",
    "relative_mce": "relative mCE vs. baseline (%) — lower is better",
    "compression_ratio": "compression ratio (×, log scale) — higher is better",
}
#: Marker and colour per recommendation method.
KNEE_STYLES = {
    "nbi_knee": ("D", "tab:red"),
    "closest_to_ideal": ("P", "tab:purple"),
    "high_tradeoff": ("X", "tab:orange"),
    "most_robust_min_ratio": ("v", "tab:green"),
    "smallest_within_drop": ("s", "tab:brown"),
}


def _robustness(run: RunData) -> str:
    return run.knees.get("robustness", "mean_corruption_accuracy")


def plot_pairwise_fronts(run: RunData, path: str | Path | None = None) -> Figure:
    """Three panels (every pair of objectives): evaluated plans faded, the Pareto set highlighted,
    the baseline as a star and the recommendations with their own markers (screening fidelity)."""
    objectives = ["clean_accuracy", _robustness(run), "compression_ratio"]
    ev = run.evaluations
    ok = ev[ev["status"] == "ok"] if len(ev) else ev
    front = ok[ok["pareto"].astype(bool)] if len(ok) else ok
    base = run.screening_baseline
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.8), constrained_layout=True)
    for ax, (x, y) in zip(axes, itertools.combinations(objectives, 2)):
        dominated = ok[~ok["pareto"].astype(bool)] if len(ok) else ok
        ax.scatter(dominated.get(x, []), dominated.get(y, []), s=14, c="0.75", alpha=0.6, label="dominated plans")
        ax.scatter(front.get(x, []), front.get(y, []), s=34, c="tab:blue", edgecolors="k", linewidths=0.4,
                   label="Pareto set", zorder=3)
        if base:
            ax.scatter([base.get(x, np.nan)], [base.get(y, np.nan)], marker="*", s=260, c="gold", edgecolors="k",
                       label="baseline (uncompressed)", zorder=4)
        seen = set()
        for rec in run.recommendations:
            if rec.get("plan_key") is None:
                continue
            row = ok[ok["plan_key"] == rec["plan_key"]]
            if row.empty:
                continue
            marker, colour = KNEE_STYLES.get(rec["method"], ("o", "k"))
            label = rec["title"] if rec["method"] not in seen else None
            seen.add(rec["method"])
            ax.scatter(row[x], row[y], marker=marker, s=110, facecolors="none", edgecolors=colour, linewidths=2,
                       label=label, zorder=5)
            ax.annotate(rec["label"], (float(row[x].iloc[0]), float(row[y].iloc[0])), textcoords="offset points",
                        xytext=(6, 6), fontsize=7, color=colour)
        for axis, name in (("x", x), ("y", y)):
            if name == "compression_ratio":
                (ax.set_xscale if axis == "x" else ax.set_yscale)("log")
        ax.set_xlabel(LABELS.get(x, x))
        ax.set_ylabel(LABELS.get(y, y))
        ax.grid(alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    for ax in axes[1:]:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    fig.legend(handles, labels, loc="outside lower center", ncol=min(len(labels), 4), fontsize=8)
    fig.suptitle(f"{run.name}: trade-offs between objectives (screening fidelity, "
                 f"{len(ok)} plans evaluated, {len(front)} on the front)")
    if path is not None:
        fig.savefig(path, dpi=120)
        plt.close(fig)
    return fig


def plot_hypervolume(run: RunData, path: str | Path | None = None) -> Figure:
    """Hypervolume of the feasible front after every generation (higher is better)."""
    fig, ax = plt.subplots(figsize=(6, 4), constrained_layout=True)
    hist = run.history
    if len(hist):
        ax.plot(hist["generation"], hist["hypervolume"], marker="o", label="NSGA-II front")
        ax2 = ax.twinx()
        ax2.bar(hist["generation"], hist["new"], alpha=0.2, color="tab:gray", label="new evaluations")
        ax2.set_ylabel("new evaluations per generation")
        ax.legend(loc="lower right")
    ax.set_xlabel("generation")
    ax.set_ylabel("hypervolume (normalised objectives) — higher is better")
    ax.set_title(f"{run.name}: convergence")
    ax.grid(alpha=0.3)
    if path is not None:
        fig.savefig(path, dpi=120)
        plt.close(fig)
    return fig


