"""Shared pieces of every figure: axis labels with units and direction, figure creation and saving,
the compression-ratio axis, the zoomed view of a front and annotations that do not overlap.

Figures are built on :class:`matplotlib.figure.Figure` with an Agg canvas, never through pyplot:
no global state, no backend switch (a notebook keeps its inline backend) and nothing to close.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.text import Annotation
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from moo_compress.fileio import atomic_open

__all__ = [
    "LABELS",
    "SHORT_LABELS",
    "HIGHER_IS_BETTER",
    "Label",
    "axis_label",
    "new_figure",
    "save_figure",
    "ratio_axis",
    "front_view",
    "place_labels",
    "no_data",
]

#: Axis label per metric column: unit and the direction of better.
LABELS = {
    "clean_accuracy": "clean accuracy (%) — higher is better",
    "mean_corruption_accuracy": "mean corruption accuracy (%) — higher is better",
    "mce": "mCE vs. baseline (%, 100 = baseline) — lower is better",
    "relative_mce": "relative mCE vs. baseline (%, 100 = baseline) — lower is better",
    "compression_ratio": "compression ratio (×, log scale) — higher is better",
    "latency_ms": "latency, batch 1 (ms) — lower is better",
}
#: Short names for crowded places (parallel-coordinate axes, colour bars).
SHORT_LABELS = {
    "clean_accuracy": "clean acc. (%)",
    "mean_corruption_accuracy": "mean corr. acc. (%)",
    "mce": "mCE (%)",
    "relative_mce": "rel. mCE (%)",
    "compression_ratio": "ratio (×)",
    "latency_ms": "latency, batch 1 (ms)",
}
HIGHER_IS_BETTER = {"clean_accuracy": True, "mean_corruption_accuracy": True, "mce": False, "relative_mce": False,
                    "compression_ratio": True, "latency_ms": False}
#: The smallest span a zoomed view gives a metric, as a fraction of its largest value (other metrics: 4 units,
#: percentage points; the ratio: a factor of two). Latencies of a fraction of a millisecond would
#: otherwise be drawn on an axis several milliseconds wide.
_RELATIVE_MIN_SPAN = {"latency_ms": 0.1}
DPI = 120


def axis_label(metric: str) -> str:
    """The axis label of a metric column (the column name itself when unknown)."""
    return LABELS.get(metric, metric)


def new_figure(width: float, height: float) -> Figure:
    """A constrained-layout figure with its own Agg canvas."""
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig: Figure, path: str | os.PathLike[str] | None) -> Figure:
    """Writes ``fig`` as a PNG to ``path`` atomically (when given) and returns it."""
    if path is not None:
        with atomic_open(Path(path), "wb") as handle:
            fig.savefig(handle, format="png", dpi=DPI)
    return fig


def ratio_axis(ax: Axes, axis: str = "x") -> None:
    """A log-scaled compression-ratio axis with ticks at powers of two, labelled ``4×``."""
    getattr(ax, f"set_{axis}scale")("log", base=2)
    target = ax.xaxis if axis == "x" else ax.yaxis
    target.set_major_locator(LogLocator(base=2))
    target.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}×"))
    target.set_minor_formatter(NullFormatter())


def _bounds(values: np.ndarray, *, log: bool, min_span: float, pad: float) -> tuple[float, float] | None:
    values = values[np.isfinite(values)]
    if log:
        values = np.log2(values[values > 0])
    if not len(values):
        return None
    lo, hi = float(values.min()), float(values.max())
    if hi - lo < min_span:
        mid = (lo + hi) / 2
        lo, hi = mid - min_span / 2, mid + min_span / 2
    span = hi - lo
    lo, hi = lo - pad * span, hi + pad * span
    return (2**lo, 2**hi) if log else (lo, hi)


def front_view(ax: Axes, x: str, y: str, *, focus: tuple[np.ndarray, np.ndarray],
               context: tuple[np.ndarray, np.ndarray]) -> int:
    """Zooms ``ax`` (metric ``x`` against metric ``y``) onto the ``focus`` points (the front and the
    baseline, as ``(xs, ys)``) plus a margin.

    Plans far from the front (a broken 2-bit plan at 10% accuracy) would otherwise squeeze the
    front into a corner. Returns how many ``context`` points fall outside the view.
    """
    (focus_x, focus_y), (context_x, context_y) = focus, context
    limits = []
    for name, values in ((x, focus_x), (y, focus_y)):
        log = name == "compression_ratio"
        values = np.asarray(values, float)
        min_span = 1.0 if log else 4.0
        if name in _RELATIVE_MIN_SPAN and np.isfinite(values).any():
            min_span = max(_RELATIVE_MIN_SPAN[name] * float(np.nanmax(np.abs(values))), 1e-6)
        limits.append(_bounds(values, log=log, min_span=min_span, pad=0.25))
    if limits[0] is not None:
        ax.set_xlim(*limits[0])
    if limits[1] is not None:
        ax.set_ylim(*limits[1])
    (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
    cx, cy = np.asarray(context_x, float), np.asarray(context_y, float)
    ok = np.isfinite(cx) & np.isfinite(cy)
    inside = (cx >= min(x0, x1)) & (cx <= max(x0, x1)) & (cy >= min(y0, y1)) & (cy <= max(y0, y1))
    return int((ok & ~inside).sum())


@dataclass(frozen=True)
class Label:
    """A text to place next to a data point.

    Attributes:
        x: Data x of the point.
        y: Data y of the point.
        text: The text.
        colour: Text (and leader line) colour.
        weight: Font weight.
    """

    x: float
    y: float
    text: str
    colour: str = "black"
    weight: str = "normal"


_DIRECTIONS = ((1, 1), (1, -1), (-1, 1), (-1, -1), (1, 0), (-1, 0), (0, 1), (0, -1))
_RADII = (9, 22, 38, 56)


def _overlaps(box: np.ndarray, boxes: Iterable[np.ndarray]) -> int:
    return sum(1 for b in boxes if box[0] < b[2] and box[2] > b[0] and box[1] < b[3] and box[3] > b[1])


def place_labels(ax: Axes, labels: Sequence[Label], *, obstacles: Sequence[tuple[float, float]] = (),
                 fontsize: float = 7.5) -> list[Annotation]:
    """Annotates each point with its text where it overlaps no earlier text, no obstacle point and
    stays inside the axes; farther placements get a thin leader line.

    Positions are tried around the point at growing distances; the first free one wins, else the
    one with the fewest overlaps. Call after the axes' limits are final.
    """
    fig = ax.figure
    fig.draw_without_rendering()  # settle the constrained layout so display positions are final
    renderer = fig.canvas.get_renderer()
    frame = ax.get_window_extent(renderer)
    to_display = ax.transData.transform
    r = 5.0  # pixels around an obstacle marker
    obstacle_boxes = []
    for px, py in list(obstacles) + [(lab.x, lab.y) for lab in labels]:
        if math.isfinite(px) and math.isfinite(py):
            dx, dy = to_display((px, py))
            obstacle_boxes.append(np.array([dx - r, dy - r, dx + r, dy + r]))
    placed: list[np.ndarray] = []
    out = []
    for lab in labels:
        if not (math.isfinite(lab.x) and math.isfinite(lab.y)):
            continue
        best = None
        for radius in _RADII:
            for sx, sy in _DIRECTIONS:
                offset = (sx * radius, sy * radius * 0.8)
                ann = ax.annotate(
                    lab.text, (lab.x, lab.y), xytext=offset, textcoords="offset points", fontsize=fontsize,
                    color=lab.colour, fontweight=lab.weight, zorder=6,
                    ha="left" if sx > 0 else "right" if sx < 0 else "center",
                    va="bottom" if sy > 0 else "top" if sy < 0 else "center",
                    bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.75},
                    arrowprops={"arrowstyle": "-", "lw": 0.6, "color": lab.colour, "shrinkA": 0, "shrinkB": 3}
                    if radius > _RADII[0] else None,
                )
                bb = ann.get_window_extent(renderer)
                box = np.array([bb.x0, bb.y0, bb.x1, bb.y1])
                outside = not (box[0] >= frame.x0 and box[2] <= frame.x1 and box[1] >= frame.y0 and box[3] <= frame.y1)
                score = 3 * _overlaps(box, placed) + _overlaps(box, obstacle_boxes) + 2 * outside
                if best is None or score < best[0]:
                    if best is not None:
                        best[1].remove()
                    best = (score, ann, box)
                else:
                    ann.remove()
                if best[0] == 0:
                    break
            if best is not None and best[0] == 0:
                break
        if best is not None:
            placed.append(best[2])
            out.append(best[1])
    return out


def no_data(ax: Axes, text: str) -> None:
    """Writes ``text`` in the middle of an axes that has nothing to show."""
    write = getattr(ax, "text2D", ax.text)  # 3-D axes take (x, y, z, text) in text()
    write(0.5, 0.3, text, transform=ax.transAxes, ha="center", va="center", fontsize=10, color="0.35", wrap=True)
