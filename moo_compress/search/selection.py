"""Selection: the screening front and the plans within its noise, measured on more search-split images.

1. **Contenders** (:func:`contenders`): the screening front, plus the plans that a front member
   dominates by less than the screening noise (their paired interval half-widths against the
   reference), so that noise alone does not decide who is on the front.
2. **Selection** (:func:`select`): the contenders and the reference are re-evaluated on more
   *search-split* images; the front and every recommendation are decided on these numbers.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from moo_compress.compress import CompressionPlan
from moo_compress.errors import MooCompressError
from moo_compress.runfolder import METRIC_COLUMNS
from moo_compress.search.claims import half_widths, plan_claims
from moo_compress.search.evaluation_record import EvaluationRecord
from moo_compress.search.latency import LATENCY_FIELDS
from moo_compress.search.objectives import Objectives, record_metrics
from moo_compress.search.pareto import pareto_mask

__all__ = ["contenders", "select", "stage_columns", "measured_points"]

logger = logging.getLogger("moo_compress.search")


def _noise(record: EvaluationRecord, reference: EvaluationRecord, objectives: Objectives,
           labels: np.ndarray) -> np.ndarray:
    """Objective-space half-widths (clean, robustness, ratio) of a record's paired intervals."""
    claims = plan_claims(record.outcomes(objectives.corruptions, objectives.severities),
                         reference.outcomes(objectives.corruptions, objectives.severities), labels)
    clean, rob = half_widths(claims, objectives.robustness)
    noise = [clean / 100, rob / 100, 0.0]
    if objectives.latency:  # half the interquartile range of the per-round speed-ups, on the objective's log scale
        low = float(record.latency.get("latency_speedup_low", 0.0))
        high = float(record.latency.get("latency_speedup_high", 0.0))
        noise.append(0.5 * math.log2(high / low) if low > 0 and high >= low else 0.0)
    return np.array(noise)



def contenders(frame: pd.DataFrame, records: dict[str, EvaluationRecord],
               reference: Callable[[EvaluationRecord], EvaluationRecord], objectives: Objectives,
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
    F_front = np.vstack(front["_F"].to_numpy()) if len(front) else np.zeros((0, len(objectives.names)))
    keys = list(front["plan_key"])
    others = frame[~frame["pareto"] & frame["feasible"] & frame["duplicate_of"].isna()]
    if "stopped" in others:
        others = others[others["stopped"].isna()]
    near: list[tuple[float, str]] = []
    for _, row in others.iterrows():
        F = np.asarray(row["_F"], float)
        record = records[row["plan_key"]]
        optimistic = F - _noise(record, reference(record), objectives, labels(record.n_clean))
        dominated = np.all(F_front <= optimistic, axis=1) & np.any(F_front < optimistic, axis=1)
        if not dominated.any():
            gap = np.min(np.linalg.norm(np.maximum(F - F_front, 0), axis=1)) if len(F_front) else 0.0
            near.append((float(gap), row["plan_key"]))
    near.sort()
    extra = [k for _, k in near][: limit if limit is not None else len(near)]
    return keys + extra



def select(frame: pd.DataFrame, keys: list[str],
           evaluate: Callable[[list[CompressionPlan]], list[EvaluationRecord]] | None,
           reference_plan: CompressionPlan, objectives: Objectives, *,
           images: int | str = "more") -> tuple[pd.DataFrame, EvaluationRecord | None]:
    """Measures the contenders ``keys`` and the reference on the selection images and keeps their front.

    ``evaluate`` gives the records of plans on the selection images (e.g. the racer extending every
    contender to ``images`` images per cell). With none (selection fidelity 0) the screening numbers
    decide. Returns the selected front (rows of ``frame`` with ``select/*`` metric columns, sorted by
    compression ratio) and the reference's selection record (None without selection).
    """
    rows = frame.set_index("plan_key").loc[keys].reset_index()
    if evaluate is None:
        for c in stage_columns(rows):
            rows[f"select/{c}"] = rows[c]
        chosen = rows[rows["pareto"]].copy()
        return chosen.sort_values(["compression_ratio", "clean_accuracy"]).reset_index(drop=True), None
    plans = [reference_plan] + [CompressionPlan.from_dict(p) for p in rows["plan"]]
    records = evaluate(plans)
    ref = records[0]
    if not ref.ok:
        raise MooCompressError(f"the reference failed at the selection fidelity: {ref.error}")
    metrics, F, feasible = measured_points(records[1:], ref, objectives)
    for c in stage_columns(rows):
        rows[f"select/{c}"] = [m.get(c, math.nan) if m else math.nan for m in metrics]
    fingerprints = [r.weights_fingerprint for r in records[1:]]
    first = np.array([fp is None or fingerprints.index(fp) == i for i, fp in enumerate(fingerprints)])
    mask = pareto_mask(F, feasible & first) if len(F) else np.zeros(0, bool)
    chosen = rows[mask].copy()
    logger.info(f"selection: {int(mask.sum())} of {len(rows)} contenders are non-dominated on "
        f"{images} search-split images per (corruption, severity)")
    return chosen.sort_values(["select/compression_ratio", "select/clean_accuracy"]).reset_index(drop=True), ref



def measured_points(records: list[EvaluationRecord], reference: EvaluationRecord,
                    objectives: Objectives) -> tuple[list[dict[str, Any] | None], np.ndarray, np.ndarray]:
    """Each record's metrics against ``reference`` on the same images (None for a failure), objective vectors
    and feasibility."""
    metrics = [record_metrics(r, reference, objectives.corruptions, objectives.severities) if r.ok else None
               for r in records]
    F = np.array([objectives.objective_vector(m) for m in metrics])
    feasible = np.array([m is not None and bool(np.all(objectives.constraint_vector(m) <= 0)) for m in metrics],
                        dtype=bool)
    return metrics, F, feasible


def stage_columns(frame: pd.DataFrame) -> tuple[str, ...]:
    """The metric columns carried from stage to stage: the run folder's metric columns, and the measured latency
    when there is one."""
    return (*METRIC_COLUMNS, *(c for c in LATENCY_FIELDS if c in frame))
