"""Tables of a run folder: the front at its best fidelity, the recommendations, accuracy per corruption.

Everything here reads :class:`~moo_compress.report.rundata.RunData` and recomputes no metric; it
only picks columns (final-fidelity values where the run has them), subtracts the baseline and
renames columns for display.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from moo_compress.errors import ConfigError
from moo_compress.report.methods import method_style
from moo_compress.report.rundata import RunData
from moo_compress.runfolder import LATENCY_COLUMNS, METRIC_COLUMNS

__all__ = [
    "METRICS",
    "FAMILIES",
    "fidelity_text",
    "front_metrics",
    "recommendations_by_row",
    "corruption_accuracy",
    "format_ms",
    "LATENCY_COLUMNS",
    "latency_titles",
    "pareto_table",
    "recommendations_table",
    "short_label",
]

#: The headline metric columns (accuracies in percent, ratio as a factor).
METRICS = METRIC_COLUMNS  # one home: moo_compress.runfolder
#: Corruption families in the order of the CIFAR-10-C benchmark.
FAMILIES = ("noise", "blur", "weather", "digital")


def format_ms(value: Any, digits: int = 3) -> str:
    """A time in milliseconds to ``digits`` significant digits, never in exponent form (``0.496``,
    ``1.02``, ``58.0``, ``1235``); ``n/a`` when missing."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        return "n/a"
    if not math.isfinite(value):
        return "n/a"
    if value == 0:
        return "0"
    decimals = max(0, digits - 1 - math.floor(math.log10(abs(value))))
    return f"{value:.{decimals}f}"


def latency_titles(run: RunData) -> dict[str, str]:
    """Display titles of the latency columns the run holds (empty without latency): column -> title, the
    batch size of the larger batch in its titles."""
    if not run.measures_latency:
        return {}
    batch = run.latency_settings.get("batch_size")
    larger = f"batch {batch}" if batch else "larger batch"
    titles = {"latency_ms": "latency, batch 1 (ms)", "latency_low_ms": "latency IQR low (ms)",
              "latency_high_ms": "latency IQR high (ms)", "latency_speedup": "speed-up vs. reference (x)",
              "latency_speedup_low": "speed-up IQR low (x)", "latency_speedup_high": "speed-up IQR high (x)",
              "latency_batch_ms": f"latency, {larger} (ms)",
              "latency_batch_speedup": f"speed-up vs. reference, {larger} (x)"}
    frame = run.pareto if len(run.pareto.columns) else run.evaluations
    return {c: t for c, t in titles.items() if c in frame and (c == "latency_ms" or frame[c].notna().any())}


def _speedup(value: Any) -> str:
    return "n/a" if value is None or not math.isfinite(float(value)) else f"{float(value):.2f}"


def _latency_formats(titles: dict[str, str]) -> dict[str, Callable[[Any], str]]:
    """How to show the latency columns: milliseconds to three significant digits (sub-millisecond times
    keep their digits), speed-ups to two decimals."""
    return {t: format_ms if c.endswith("_ms") else _speedup for c, t in titles.items()}


def fidelity_text(run: RunData, which: str = "best") -> str:
    """How many images a fidelity used, e.g. ``"final fidelity, 100 images per class"``.

    Args:
        run: The run.
        which: ``"screening"``, ``"final"`` or ``"best"`` (final when the run has it).

    Raises:
        ConfigError: for another ``which``.
    """
    if which not in ("best", "screening", "final"):
        raise ConfigError(f"which must be 'best', 'screening' or 'final', got {which!r}")
    if which == "best":
        which = "final" if run.has_final else "screening"
    block = run.info.get(which) or {}
    if "n_per_class" not in block:
        return f"{which} fidelity"
    n = block["n_per_class"]
    split = block.get("split")
    if block.get("images_per_cell"):
        return f"{which}, {block['images_per_cell']} images per (corruption, severity) of the {split} split"
    where = f" of the {split} split" if split in ("search", "report") else ""
    name = ({"final": "report", "screening": "screening"}[which] if split in ("search", "report")
            else which + " fidelity")
    return f"{name}, {'every image' if n is None else f'{n} images per class'}{where}"


def front_metrics(run: RunData) -> pd.DataFrame:
    """The Pareto set (rows as in ``pareto.csv``) with every metric column at the best fidelity.

    Where the run re-evaluated its front, ``clean_accuracy``, ``family/noise``, ``acc/fog``, ... hold
    the ``final/*`` values; otherwise the screening values. ``row`` is the row number of ``pareto.csv``.
    """
    front = run.pareto.copy()
    if run.has_final:
        for column in [c for c in front.columns if c.startswith("final/")]:
            front[column.removeprefix("final/")] = front[column]
    front.insert(0, "row", np.arange(len(front)))
    return front


def recommendations_by_row(run: RunData) -> dict[int, list[dict[str, Any]]]:
    """Recommendations grouped by the Pareto row they point at (several methods may pick one plan)."""
    out: dict[int, list[dict[str, Any]]] = {}
    for rec in run.recommendations:
        if rec.get("row") is not None and 0 <= int(rec["row"]) < len(run.pareto):
            out.setdefault(int(rec["row"]), []).append(rec)
    return out


def corruption_accuracy(run: RunData, *, by: str = "family") -> tuple[pd.DataFrame, pd.Series]:
    """Accuracy (%) of every Pareto member and of the baseline per corruption family or per corruption.

    Args:
        run: The run.
        by: ``"family"`` (noise, blur, weather, digital) or ``"corruption"`` (one column each).

    Returns:
        The members' accuracies (index: Pareto row; columns: families or corruptions, best fidelity)
        and the baseline's at the same fidelity. Subtract them for the change against the baseline.

    Raises:
        ConfigError: for another ``by``.
    """
    if by not in ("family", "corruption"):
        raise ConfigError(f"by must be 'family' or 'corruption', got {by!r}")
    prefix = "family/" if by == "family" else "acc/"
    front = front_metrics(run)
    present = [c.removeprefix(prefix) for c in front.columns if c.startswith(prefix)]
    order = FAMILIES if by == "family" else tuple(run.info.get("corruptions") or ())
    names = [n for n in order if n in present] + [n for n in present if n not in order]
    members = front[[prefix + n for n in names]].astype(float)
    members.columns = names
    members.index = front["row"].to_numpy()
    base = run.baseline
    baseline = pd.Series({n: float(base.get(prefix + n, np.nan)) for n in names}, dtype=float)
    return members, baseline


def short_label(label: Any, row: int | None = None, *, max_len: int = 22) -> str:
    """A plan label fit for a figure: ``#3 P50-C16-Q8``; long per-group labels shrink to ``#3``."""
    text = str(label)
    prefix = "" if row is None else f"#{row}"
    if len(text) > max_len:
        return prefix or text[: max_len - 1] + "…"
    return f"{prefix} {text}".strip()


def _tags(run: RunData) -> dict[int, str]:
    return {row: ", ".join(method_style(r["method"]).short for r in recs)
            for row, recs in recommendations_by_row(run).items()}


def pareto_table(run: RunData) -> pd.DataFrame:
    """The Pareto set as a display table, one row per plan (``#`` = row of ``pareto.csv``).

    Columns: the plan label, the recommendations that picked it, the genes, then clean accuracy,
    robustness and compression ratio at the best fidelity with their change against the baseline, and
    where the run measured latency its columns (:func:`latency_titles`; ``attrs["formats"]`` says how
    to show them).
    """
    front = front_metrics(run)
    base = run.baseline
    tags = _tags(run)
    table = pd.DataFrame({"#": front["row"], "plan": front["label"],
                          "recommended as": [tags.get(int(r), "") for r in front["row"]]})
    for column in run.gene_columns:
        if column in front:
            table[column.removeprefix("gene/")] = front[column].astype(str)
    columns = {
        "clean_accuracy": "clean acc. (%)",
        "mean_corruption_accuracy": "mean corr. acc. (%)",
        "mce": "mCE (%, 100 = baseline)",
        "compression_ratio": "ratio (x)",
    }
    for metric, title in columns.items():
        if metric not in front:
            continue
        table[title] = front[metric].astype(float).round(2)
        if metric in ("clean_accuracy", "mean_corruption_accuracy") and metric in base:
            table[f"Δ {title.split(' (')[0]} (points)"] = (front[metric].astype(float) - base[metric]).round(2)
    titles = latency_titles(run)
    for column, title in titles.items():
        table[title] = front[column].astype(float) if column in front else np.nan
    table = table.reset_index(drop=True)
    table.attrs["fidelity"] = fidelity_text(run)
    if titles:
        table.attrs["formats"] = _latency_formats(titles)
    return table


def recommendations_table(run: RunData) -> pd.DataFrame:
    """One row per recommendation: method, title, Pareto row, plan label, final metrics, the latency
    columns where the run measured latency (:func:`latency_titles`) and the rationale."""
    titles = latency_titles(run)
    rows = []
    for rec in run.recommendations:
        latency = rec.get("latency") or {}
        rows.append({
            "method": rec.get("method"),
            "title": rec.get("title"),
            "#": rec.get("row"),
            "plan": rec.get("label", "(none)"),
            "clean acc. (%)": rec.get("clean_accuracy", np.nan),
            "mean corr. acc. (%)": rec.get("mean_corruption_accuracy", np.nan),
            "mCE": rec.get("mce", np.nan),
            "ratio (x)": rec.get("compression_ratio", np.nan),
            # knees.json names them without the prefix: ms, low_ms, ..., batch_speedup
            **{t: _float(latency.get(c.removeprefix("latency_"))) for c, t in titles.items()},
            "rationale": rec.get("rationale", ""),
        })
    columns = ["method", "title", "#", "plan", "clean acc. (%)", "mean corr. acc. (%)", "mCE", "ratio (x)",
               *titles.values(), "rationale"]
    table = pd.DataFrame(rows, columns=columns)
    table["#"] = table["#"].astype("Int64")
    if not titles:
        return table.round(2)
    plain = [c for c in columns if c not in titles.values()]
    table[plain] = table[plain].round(2)  # latency keeps its digits: sub-millisecond times would round away
    table.attrs["formats"] = _latency_formats(titles)
    return table


def _float(value: Any) -> float:
    return np.nan if value is None else float(value)
