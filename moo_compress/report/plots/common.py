"""What several figures draw the same way: the plans of a run split into context, front,
baseline and recommendations, and their markers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.lines import Line2D

from moo_compress.report.methods import method_style
from moo_compress.report.plots.style import Label
from moo_compress.report.rundata import RunData
from moo_compress.report.tables import fidelity_text, front_metrics, recommendations_by_row, short_label

__all__ = ["Plans", "split_plans", "column", "draw_picks", "pick_handles", "pick_labels", "baseline_handle"]

#: Artists carry a ``gid`` naming what they show ("context", "front", "baseline", "pick:<method>", ...),
#: so tests and users can find them in a returned Figure.
BASELINE_STYLE = {"marker": "*", "s": 300, "c": "gold", "edgecolors": "black", "linewidths": 0.9, "zorder": 7,
                  "gid": "baseline"}
FRONT_COLOUR = "tab:blue"


@dataclass(frozen=True)
class Plans:
    """The plans of a run as figures draw them.

    Attributes:
        context: Every successfully evaluated plan not on the front (screening fidelity).
        front: The Pareto set at the best fidelity (``row`` = row of ``pareto.csv``).
        baseline: The uncompressed model's metrics at the same fidelity as ``front``.
        picks: Pareto row -> recommendations pointing at it.
        failed: How many candidates failed.
        front_fidelity: e.g. ``"final fidelity, 100 images per class"``.
        context_fidelity: e.g. ``"screening fidelity, 2 images per class"``.
    """

    context: pd.DataFrame
    front: pd.DataFrame
    baseline: dict[str, Any]
    picks: dict[int, list[dict[str, Any]]]
    failed: int
    front_fidelity: str
    context_fidelity: str

    def label(self, row: int) -> str:
        """``#row label`` of a front member (long per-group labels shrink to ``#row``)."""
        return short_label(self.front.loc[self.front["row"] == row, "label"].iloc[0], row)


def split_plans(run: RunData) -> Plans:
    """Splits a run into the pieces above."""
    ev = run.evaluations
    ok = run.ok
    context = ok[~ok["pareto"].astype(bool)] if "pareto" in ok else ok
    failed = int((ev["status"] != "ok").sum()) if "status" in ev else 0
    return Plans(context=context, front=front_metrics(run), baseline=run.baseline, picks=recommendations_by_row(run),
                 failed=failed, front_fidelity=fidelity_text(run), context_fidelity=fidelity_text(run, "screening"))


def column(frame: pd.DataFrame, name: str) -> np.ndarray:
    """A column as floats (NaN when absent)."""
    return frame[name].to_numpy(float) if name in frame else np.full(len(frame), np.nan)


def draw_picks(ax: Axes, plans: Plans, x: str, y: str, *, size: float = 150) -> None:
    """Hollow markers around the recommended plans, one per method (nested when several pick one plan,
    the first method of ``knees.json``, the knee, outermost)."""
    for row, recs in plans.picks.items():
        member = plans.front[plans.front["row"] == row]
        for i, rec in enumerate(recs):
            style = method_style(rec["method"])
            ax.scatter(column(member, x), column(member, y), marker=style.marker,
                       s=size * (1 + 0.6 * (len(recs) - 1 - i)),
                       facecolors="none", edgecolors=style.colour, linewidths=1.8, zorder=5,
                       gid=f"pick:{rec['method']}")


def pick_handles(plans: Plans) -> list[tuple[Line2D, str]]:
    """Legend entries of the recommendation methods present, each naming its plan."""
    out = []
    seen: dict[str, list[str]] = {}
    for row, recs in sorted(plans.picks.items()):
        for rec in recs:
            seen.setdefault(rec["method"], []).append(plans.label(row))
    titles = {r["method"]: r.get("title", r["method"]) for recs in plans.picks.values() for r in recs}
    for method, labels in seen.items():
        style = method_style(method)
        handle = Line2D([], [], linestyle="none", marker=style.marker, markersize=9, markerfacecolor="none",
                        markeredgecolor=style.colour, markeredgewidth=1.8)
        out.append((handle, f"{titles[method]}: {', '.join(labels)}"))
    return out


def baseline_handle() -> Line2D:
    """Legend entry of the baseline star."""
    return Line2D([], [], linestyle="none", marker="*", markersize=14, markerfacecolor="gold", markeredgecolor="black")


def pick_labels(plans: Plans, x: str, y: str) -> list[Label]:
    """Labels of the baseline and of every recommended plan (``#row plan``) in the ``x``-``y`` plane."""
    out = []
    if plans.baseline:
        out.append(Label(plans.baseline.get(x, np.nan), plans.baseline.get(y, np.nan), "reference", "black", "bold"))
    for row in sorted(plans.picks):
        member = plans.front[plans.front["row"] == row]
        colour = "black" if len(plans.picks[row]) > 1 else "dimgray"
        out.append(Label(float(column(member, x)[0]), float(column(member, y)[0]), plans.label(row), colour))
    return out
