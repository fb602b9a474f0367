"""Recommendations: knee points and user picks decided on the selection numbers, reported with the
report split's intervals, and the sentence that explains each."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from moo_compress.evaluation.stats import Interval
from moo_compress.search.claims import LEVEL
from moo_compress.search.knee import (
    closest_to_ideal,
    high_tradeoff_points,
    most_robust_with_ratio,
    nbi_knee,
    smallest_within_accuracy_drop,
)
from moo_compress.search.latency import speedup_verdict
from moo_compress.search.records import Front, PlanRecord
from moo_compress.search.reporting import robustness_score

__all__ = ["Pick", "recommend", "recommendations", "threshold_met_by"]


@dataclass(frozen=True)
class Pick:
    """A recommendation decided on the selection numbers.

    Attributes:
        method: Its name in ``knees.json`` (``nbi_knee``, ``closest_to_ideal``, ``high_tradeoff``,
            ``most_robust_min_ratio``, ``smallest_within_drop``).
        title: A heading for it.
        row: The chosen plan's row in the selected front (None when no plan qualifies).
        why: Why that plan, in words.
        threshold: The user pick's threshold (``{"metric", "min"}``), if it has one.
    """

    method: str
    title: str
    row: int | None
    why: str
    threshold: dict[str, Any] | None = None

def recommend(front: pd.DataFrame, reference_accuracy: float, robustness: str, *, min_ratio: float,
              max_drop: float, prefix: str = "select/", latency: bool = False) -> list[Pick]:
    """Knee points and user picks, decided on the ``prefix`` (selection) metrics of the front.

    Robustness is the space's metric (mean corruption accuracy, mCE or relative mCE). With ``latency``
    the knees are found in four dimensions (batch-1 latency relative to the reference, from
    ``{prefix}latency_speedup``, the fourth). Returns
    one :class:`Pick` per recommendation (its ``row`` in ``front``, None if no plan qualifies).
    """
    if front.empty:
        return []
    acc = front[f"{prefix}clean_accuracy"].to_numpy(float)
    rob = robustness_score(front, prefix, robustness)
    ratio = front[f"{prefix}compression_ratio"].to_numpy(float)
    ok = np.isfinite(acc) & np.isfinite(rob) & np.isfinite(ratio)
    columns = [-acc, -rob, -np.log2(np.where(ok, ratio, 1.0))]
    if latency:  # log latency relative to the reference: minus log2 of the paired speed-up
        speedup = front[f"{prefix}latency_speedup"].to_numpy(float)
        ok &= np.isfinite(speedup) & (speedup > 0)
        columns.append(-np.log2(np.where(ok, speedup, 1.0)))
    idx = np.flatnonzero(ok)
    if not len(idx):
        return []
    name = {"mean_corruption_accuracy": "mean corruption accuracy", "mce": "mCE", "relative_mce": "relative mCE"}
    F = np.column_stack([c[idx] for c in columns])
    every = "all four objectives" if latency else "all three objectives"
    picks: list[Pick] = []
    if len(idx) >= 2:
        picks.append(Pick("nbi_knee", "Knee: farthest from the plane through each objective's best plan",
                          int(idx[nbi_knee(F)]), "the best balanced trade-off: moving away from it along the front "
                          "buys little in one objective for a lot in another"))
        picks.append(Pick("closest_to_ideal", "Closest to the ideal point", int(idx[closest_to_ideal(F)]),
                          f"nearest to the (unreachable) plan that is best in {every} at once"))
        for i in high_tradeoff_points(F):
            picks.append(Pick("high_tradeoff", "High trade-off point", int(idx[i]),
                              "any neighbouring plan gives up much more than it gains"))
    picks.append(Pick("most_robust_min_ratio", f"Most robust with compression ratio >= {min_ratio:g}x",
                      most_robust_with_ratio(np.where(ok, rob, -np.inf), np.where(ok, ratio, 0), min_ratio),
                      f"the best {name[robustness]} among plans at least {min_ratio:g}x smaller",
                      {"metric": "compression_ratio", "min": min_ratio}))
    picks.append(Pick("smallest_within_drop", f"Smallest within {max_drop:g} points of the reference's clean accuracy",
                      smallest_within_accuracy_drop(np.where(ok, acc, -np.inf), ratio, reference_accuracy, max_drop),
                      f"the highest compression ratio that keeps clean accuracy within {max_drop:g} points",
                      {"metric": "clean_delta", "min": -max_drop}))
    return picks


def recommendations(front: Front, picks: list[Pick], robustness: str,
                     report_split: str | None) -> list[dict[str, Any]]:
    """The picks (decided on the search split) with their report-split numbers, intervals and flags, as
    ``knees.json`` holds them (``report_split``: the split reported on; None: no report was measured)."""
    out = []
    for pick in picks:
        row = pick.row
        entry: dict[str, Any] = {"method": pick.method, "title": pick.title}
        if row is None:
            out.append({**entry, "row": None, "rationale": "no plan on the front qualifies"})
            continue
        plan = front.record(row)
        entry.update(row=int(row), plan_key=plan.key, label=plan.label, plan=plan.plan,
                     decided_on="search split", reported_on=report_split or "search split (selection)")
        entry.update(plan.metrics)
        if plan.onnx is not None:
            entry["onnx"] = plan.onnx.to_dict()
        if plan.latency is not None:
            entry["latency"] = plan.latency.to_dict()
        intervals = {name: claim.to_dict() for name, claim in plan.intervals.items()}
        entry["intervals"] = intervals
        if plan.heldout is not None:
            entry["heldout"] = plan.heldout.to_dict()
        entry.update(plan.flags)
        threshold = pick.threshold
        if threshold is not None:
            entry["threshold"] = threshold = {**threshold, "met_by": threshold_met_by(threshold, intervals, entry)}
        entry["rationale"] = _rationale(pick.why, plan, threshold, robustness)
        out.append(entry)
    return out


def threshold_met_by(threshold: dict[str, Any], intervals: dict[str, Any], entry: dict[str, Any]) -> str:
    """``interval`` (the whole interval meets the threshold), ``point`` (only the estimate) or ``no``."""
    if threshold["metric"] == "compression_ratio":
        return "exact" if entry["compression_ratio"] >= threshold["min"] else "no"
    claim = intervals.get(threshold["metric"])
    if claim is None:  # no report split measured: the pick met it on the selection numbers, as a point
        return "point"
    if claim["low"] >= threshold["min"]:
        return "interval"
    return "point" if claim["estimate"] >= threshold["min"] else "no"


def _rationale(why: str, plan: PlanRecord, threshold: dict[str, Any] | None, robustness: str) -> str:
    """The sentence that explains a recommendation, from its plan's typed record."""
    iv = plan.intervals

    def fmt(name: str, signed: bool = True) -> str:
        if name not in iv or not math.isfinite(iv[name].estimate):
            return "undefined"
        return Interval(iv[name].estimate, iv[name].low, iv[name].high, LEVEL, 1).format(1, signed)

    text = (f"{why}. {plan.metrics['compression_ratio']:.1f}x smaller; clean {fmt('clean_delta')} points, mean "
            f"corruption accuracy {fmt('mca_delta')} points, mCE {fmt('mce', False)}")
    if robustness == "relative_mce":
        text += f", relative mCE {fmt('relative_mce', False)}"
    text += " against the reference (95% intervals over report images)"
    if "orig_clean_delta" in iv:
        text += (f"; against the original model (no recovery): clean {fmt('orig_clean_delta')}, mean corruption "
                 f"accuracy {fmt('orig_mca_delta')} points")
    lat = plan.latency
    if lat is not None:
        faster = speedup_verdict(lat.speedup_low, lat.speedup_high)
        text += (f"; batch-1 latency {lat.ms:.3g} ms (interquartile range {lat.low_ms:.3g}-{lat.high_ms:.3g} ms), "
                 f"speed-up {lat.speedup:.2f}x [{lat.speedup_low:.2f}, {lat.speedup_high:.2f}] over the "
                 f"reference timed in the same rounds: {faster}")
    flags = plan.flags
    if "worst_class" in flags:
        text += (f"; worst-hit class {flags['worst_class']} {fmt('worst_class_delta')}, worst-hit corruption "
                 f"{flags.get('worst_corruption')} {fmt('worst_corruption_delta')}")
    onnx = plan.onnx
    if onnx is not None:
        text += (f"; its ONNX file ({onnx.file}, {'int8 QDQ' if onnx.kind == 'qdq' else 'float weights'}) gives "
                 f"{onnx.accuracy:.2f}% clean top-1 in ONNX Runtime against {onnx.torch_accuracy:.2f}% in PyTorch "
                 f"on the same report images" + ("" if onnx.within_tolerance else " (OUTSIDE the tolerance)"))
    if threshold and threshold["metric"] == "clean_delta":
        text += {"interval": "; the whole interval is within the allowed drop",
                 "point": "; only the point estimate is within the allowed drop (the interval reaches beyond it)",
                 "no": "; on the report split it is NOT within the allowed drop"}[threshold["met_by"]]
    if flags.get("dominated_on_report_by"):
        text += f"; dominated on the report split by {flags['dominated_on_report_by']}"
    if flags.get("tied_with"):
        text += f"; statistically tied with {flags['tied_with']}"
    return text + "."
