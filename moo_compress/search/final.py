"""After screening: select the front on the search split, then measure it on the report split.

1. **Contenders** (:func:`contenders`): the screening front, plus the plans that a front member
   dominates by less than the screening noise (their paired interval half-widths against the
   reference), so that noise alone does not decide who is on the front.
2. **Selection** (:func:`select`): the contenders and the reference are re-evaluated on more
   *search-split* images; the front and every recommendation are decided on these numbers.
3. **Report** (:func:`report`): the selected plans, the reference (the uncompressed model after the
   same recovery as every candidate) and the original (the untouched model) are measured on the
   *report split*, which selected nothing, with paired intervals against the reference. Plans dominated
   on the report split, and neighbours statistically tied, are flagged, never silently kept or dropped.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from moo_compress.compress import CompressionPlan
from moo_compress.errors import MooCompressError
from moo_compress.runfolder import METRIC_COLUMNS
from moo_compress.search.candidate import load_resources
from moo_compress.search.claims import LEVEL, ROBUSTNESS_HIGHER_IS_BETTER, Outcomes, half_widths, plan_claims, \
    record_outcomes, tied
from moo_compress.search.knee import (
    closest_to_ideal,
    high_tradeoff_points,
    most_robust_with_ratio,
    nbi_knee,
    smallest_within_accuracy_drop,
)
from moo_compress.search.objectives import Objectives, record_metrics
from moo_compress.search.problem import PlanEvaluator

__all__ = ["contenders", "select", "recommend", "report", "METRICS", "pareto_mask"]

#: Metric columns carried from one stage to the next.
METRICS = METRIC_COLUMNS  # one home: moo_compress.runfolder


def pareto_mask(F: np.ndarray, feasible: np.ndarray | None = None) -> np.ndarray:
    """Boolean mask of the non-dominated (and feasible) rows of ``F`` (minimised)."""
    from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting

    F = np.asarray(F, float)
    mask = np.zeros(len(F), dtype=bool)
    candidates = np.flatnonzero(feasible if feasible is not None else np.ones(len(F), bool))
    if len(candidates):
        front = NonDominatedSorting().do(F[candidates], only_non_dominated_front=True)
        mask[candidates[front]] = True
    return mask


def _noise(record: dict[str, Any], reference: dict[str, Any], objectives: Objectives,
           labels: np.ndarray) -> np.ndarray:
    """Objective-space half-widths (clean, robustness, ratio) of a record's paired intervals."""
    claims = plan_claims(record_outcomes(record, objectives.corruptions, objectives.severities),
                         record_outcomes(reference, objectives.corruptions, objectives.severities), labels)
    clean, rob = half_widths(claims, objectives.robustness)
    return np.array([clean / 100, rob / 100, 0.0])


def contenders(frame: pd.DataFrame, records: dict[str, dict[str, Any]],
               reference: Callable[[dict[str, Any]], dict[str, Any]], objectives: Objectives,
               labels: Callable[[int], np.ndarray], *, limit: int | None = None) -> list[str]:
    """Plan keys of the screening front plus the plans within its noise (nearest first, at most ``limit``).

    A plan is within the front's noise when no front member still dominates it after the plan's
    accuracy and robustness are improved by the half-widths of its paired intervals against the
    reference on the same images. Failed, infeasible, duplicate and raced-out plans never contend.

    Args:
        frame: The evaluations (``_F``, ``pareto``, ``feasible``, ``duplicate_of``).
        records: Records by plan key.
        reference: The reference's record on the images of a given record.
        objectives: The run's objectives.
        labels: Labels of the first ``n`` clean images of the records.
        limit: At most this many plans beyond the front.
    """
    if frame.empty:
        return []
    front = frame[frame["pareto"]]
    F_front = np.vstack(front["_F"].to_numpy()) if len(front) else np.zeros((0, 3))
    keys = list(front["plan_key"])
    others = frame[~frame["pareto"] & frame["feasible"] & frame["duplicate_of"].isna()]
    if "stopped" in others:
        others = others[others["stopped"].isna()]
    near: list[tuple[float, str]] = []
    for _, row in others.iterrows():
        F = np.asarray(row["_F"], float)
        record = records[row["plan_key"]]
        optimistic = F - _noise(record, reference(record), objectives, labels(int(record["n_clean"])))
        dominated = np.all(F_front <= optimistic, axis=1) & np.any(F_front < optimistic, axis=1)
        if not dominated.any():
            gap = np.min(np.linalg.norm(np.maximum(F - F_front, 0), axis=1)) if len(F_front) else 0.0
            near.append((float(gap), row["plan_key"]))
    near.sort()
    extra = [k for _, k in near][: limit if limit is not None else len(near)]
    return keys + extra


def select(frame: pd.DataFrame, keys: list[str],
           evaluate: Callable[[list[CompressionPlan]], list[dict[str, Any]]] | None, reference_plan: CompressionPlan,
           objectives: Objectives, log: Callable[[str], None], *, images: int | str = "more") -> tuple[pd.DataFrame,
                                                                                                    dict[str, Any]]:
    """Measures the contenders ``keys`` and the reference on the selection images and keeps their front.

    ``evaluate`` gives the records of plans on the selection images (e.g. the racer extending every
    contender to ``images`` images per cell). With none (selection fidelity 0) the screening numbers
    decide. Returns the selected
    front (rows of ``frame`` with ``select/*`` metric columns, sorted by compression ratio) and the
    reference's selection record.
    """
    rows = frame.set_index("plan_key").loc[keys].reset_index()
    if evaluate is None:
        for c in METRICS:
            rows[f"select/{c}"] = rows[c]
        chosen = rows[rows["pareto"]].copy()
        return chosen.sort_values(["compression_ratio", "clean_accuracy"]).reset_index(drop=True), {}
    plans = [reference_plan] + [CompressionPlan.from_dict(p) for p in rows["plan"]]
    records = evaluate(plans)
    ref = records[0]
    if ref["status"] != "ok":
        raise MooCompressError(f"the reference failed at the selection fidelity: {ref['error']}")
    metrics = [record_metrics(r, ref, objectives.corruptions, objectives.severities) if r["status"] == "ok" else None
               for r in records[1:]]
    for c in METRICS:
        rows[f"select/{c}"] = [m.get(c, math.nan) if m else math.nan for m in metrics]
    F = np.array([objectives.objective_vector(m) for m in metrics])
    feasible = np.array([m is not None and bool(np.all(objectives.constraint_vector(m) <= 0)) for m in metrics])
    fingerprints = [r.get("weights_fingerprint") for r in records[1:]]
    first = np.array([fp is None or fingerprints.index(fp) == i for i, fp in enumerate(fingerprints)])
    mask = pareto_mask(F, feasible & first) if len(F) else np.zeros(0, bool)
    chosen = rows[mask].copy()
    log(f"selection: {int(mask.sum())} of {len(rows)} contenders are non-dominated on "
        f"{images} search-split images per (corruption, severity)")
    return chosen.sort_values(["select/compression_ratio", "select/clean_accuracy"]).reset_index(drop=True), ref


def _robustness_score(front: pd.DataFrame, prefix: str, robustness: str) -> np.ndarray:
    """Robustness in the space's metric, higher-is-better."""
    values = front[f"{prefix}{robustness}"].to_numpy(float)
    return values if ROBUSTNESS_HIGHER_IS_BETTER[robustness] else -values


def recommend(front: pd.DataFrame, reference_accuracy: float, robustness: str, *, min_ratio: float,
              max_drop: float, prefix: str = "select/") -> list[dict[str, Any]]:
    """Knee points and user picks, decided on the ``prefix`` (selection) metrics of the front.

    Robustness is the space's metric (mean corruption accuracy, mCE or relative mCE). Returns one dict
    per pick: ``method``, ``title``, ``row`` (in ``front``, None if no plan qualifies) and ``why``.
    """
    if front.empty:
        return []
    acc = front[f"{prefix}clean_accuracy"].to_numpy(float)
    rob = _robustness_score(front, prefix, robustness)
    ratio = front[f"{prefix}compression_ratio"].to_numpy(float)
    ok = np.isfinite(acc) & np.isfinite(rob) & np.isfinite(ratio)
    idx = np.flatnonzero(ok)
    if not len(idx):
        return []
    name = {"mean_corruption_accuracy": "mean corruption accuracy", "mce": "mCE", "relative_mce": "relative mCE"}
    F = np.column_stack([-acc[idx], -rob[idx], -np.log2(ratio[idx])])
    picks: list[dict[str, Any]] = []
    if len(idx) >= 2:
        picks.append({"method": "nbi_knee", "title": "Knee: farthest from the plane through each objective's best plan",
                      "row": int(idx[nbi_knee(F)]), "why": "the best balanced trade-off: moving away from it along "
                      "the front buys little in one objective for a lot in another"})
        picks.append({"method": "closest_to_ideal", "title": "Closest to the ideal point",
                      "row": int(idx[closest_to_ideal(F)]),
                      "why": "nearest to the (unreachable) plan that is best in all three objectives at once"})
        for i in high_tradeoff_points(F):
            picks.append({"method": "high_tradeoff", "title": "High trade-off point", "row": int(idx[i]),
                          "why": "any neighbouring plan gives up much more than it gains"})
    picks.append({"method": "most_robust_min_ratio", "title": f"Most robust with compression ratio >= {min_ratio:g}x",
                  "row": most_robust_with_ratio(np.where(ok, rob, -np.inf), np.where(ok, ratio, 0), min_ratio),
                  "why": f"the best {name[robustness]} among plans at least {min_ratio:g}x smaller",
                  "threshold": {"metric": "compression_ratio", "min": min_ratio}})
    picks.append({"method": "smallest_within_drop",
                  "title": f"Smallest within {max_drop:g} points of the reference's clean accuracy",
                  "row": smallest_within_accuracy_drop(np.where(ok, acc, -np.inf), ratio, reference_accuracy, max_drop),
                  "why": f"the highest compression ratio that keeps clean accuracy within {max_drop:g} points",
                  "threshold": {"metric": "clean_delta", "min": -max_drop}})
    return picks


def _interval_columns(prefix: str, name: str, interval: Any) -> dict[str, float]:
    return {f"{prefix}{name}": interval.estimate, f"{prefix}{name}_low": interval.low,
            f"{prefix}{name}_high": interval.high}


def report(front: pd.DataFrame, evaluator: PlanEvaluator, reference_plan: CompressionPlan, objectives: Objectives,
           log: Callable[[str], None]) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Measures the selected ``front``, the reference and the original on the report spec of ``evaluator``.

    Adds ``final/*`` metrics (against the report reference), paired intervals (``final/clean_delta``,
    ``final/mca_delta``, ``final/mce``, ``final/relative_mce``, each with ``_low`` / ``_high``), the
    worst-hit class and corruption, ``dominated_on_report_by`` and ``tied_with``. Returns the front and
    ``{"reference": metrics, "original": metrics, "recovery": claims of the reference against the
    original, "images": ...}``.
    """
    spec = evaluator.spec
    labels = load_resources(spec).clean.labels
    plans = [reference_plan, CompressionPlan()] + [CompressionPlan.from_dict(p) for p in front["plan"]]
    records = evaluator(plans)
    ref, original = records[0], records[1]
    for name, rec in (("reference", ref), ("original", original)):
        if rec["status"] != "ok":
            raise MooCompressError(f"the {name} model failed on the report split: {rec['error']}")
    corr, sev = objectives.corruptions, objectives.severities
    ref_out = record_outcomes(ref, corr, sev)
    outcomes: list[Outcomes | None] = []
    rows: list[dict[str, Any]] = []
    for record in records[2:]:
        if record["status"] != "ok":
            outcomes.append(None)
            rows.append({f"final/{c}": math.nan for c in METRICS})
            continue
        metrics = record_metrics(record, ref, corr, sev)
        out = record_outcomes(record, corr, sev)
        outcomes.append(out)
        claims = plan_claims(out, ref_out, labels)
        row = {f"final/{k}": v for k, v in metrics.items() if k in METRICS or k.startswith(("acc/", "family/"))}
        for name in ("clean_delta", "mca_delta", "mce", "relative_mce"):
            row.update(_interval_columns("final/", name, claims[name]))
        row["final/relative_mce"] = claims["relative_mce"].estimate  # NaN where undefined
        row.update({"final/worst_class": claims["worst_class"],
                    **_interval_columns("final/", "worst_class_delta", claims["worst_class_delta"]),
                    "final/worst_corruption": claims["worst_corruption"],
                    **_interval_columns("final/", "worst_corruption_delta", claims["worst_corruption_delta"]),
                    "final/changed_predictions": claims["changed"], "final/n_clean": claims["n_clean"],
                    "final/n_corrupted": claims["n_corrupted"]})
        rows.append(row)
    front = pd.concat([front.reset_index(drop=True), pd.DataFrame(rows)], axis=1)
    front["dominated_on_report_by"] = _dominated(front, objectives.robustness)
    front["tied_with"] = _ties(front, outcomes)
    recovery = plan_claims(ref_out, record_outcomes(original, corr, sev), labels)
    base = {
        "reference": record_metrics(ref, ref, corr, sev),
        "original": record_metrics(original, ref, corr, sev),
        "recovery": {k: (v.to_dict() if hasattr(v, "to_dict") else v) for k, v in recovery.items()},
        "n_clean": int(ref["n_clean"]),
        "n_corrupted": int(ref["n_corrupted"]) // max(1, len(corr) * len(sev)),
        "split": spec.split,
    }
    flagged = int(front["dominated_on_report_by"].notna().sum())
    log(f"report: {len(front)} plans, the reference and the original measured on {base['n_clean']} clean and "
        f"{base['n_corrupted']} corrupted {spec.split}-split images per (corruption, severity); "
        f"{flagged} plan(s) dominated on the report split (flagged)")
    return front, base


def _dominated(front: pd.DataFrame, robustness: str) -> pd.Series:
    """Label of a reported plan whose report-split point estimates dominate the row's, else None."""
    acc = front["final/clean_accuracy"].to_numpy(float)
    rob = _robustness_score(front, "final/", robustness)
    ratio = front["final/compression_ratio"].to_numpy(float)
    out: list[str | None] = []
    for i in range(len(front)):
        better = None
        for j in range(len(front)):
            if i == j or not (np.isfinite(acc[j]) and np.isfinite(rob[j])):
                continue
            ge = acc[j] >= acc[i] and rob[j] >= rob[i] and ratio[j] >= ratio[i]
            gt = acc[j] > acc[i] or rob[j] > rob[i] or ratio[j] > ratio[i]
            if ge and gt:
                better = str(front["label"].iloc[j])
                break
        out.append(better)
    return pd.Series(out, index=front.index, dtype=object)


def _ties(front: pd.DataFrame, outcomes: list[Outcomes | None]) -> pd.Series:
    """Labels of the ratio-order neighbours a plan is statistically tied with (clean and robustness), else None."""
    out: list[str | None] = []
    for i in range(len(front)):
        names = []
        for j in (i - 1, i + 1):
            if 0 <= j < len(front) and outcomes[i] is not None and outcomes[j] is not None:
                if tied(outcomes[i], outcomes[j], level=LEVEL):
                    names.append(str(front["label"].iloc[j]))
        out.append("; ".join(names) or None)
    return pd.Series(out, index=front.index, dtype=object)
