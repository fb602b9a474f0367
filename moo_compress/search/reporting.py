"""The report: the selected plans, the reference and the original measured on the report split.

The report split selected nothing, so its numbers are honest: each plan gets paired intervals against
the reference (the uncompressed model after the same recovery as every candidate), its worst-hit class
and corruption, and flags for plans dominated on the report split or statistically tied with their
neighbours, never silently kept or dropped.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np
import pandas as pd

from moo_compress.compress import CompressionPlan
from moo_compress.errors import MooCompressError
from moo_compress.runfolder import METRIC_COLUMNS
from moo_compress.search.candidate import load_resources
from moo_compress.search.claims import LEVEL, ROBUSTNESS_HIGHER_IS_BETTER, Outcomes, plan_claims, tied
from moo_compress.search.latency import LATENCY_FIELDS
from moo_compress.search.objectives import Objectives, record_metrics
from moo_compress.search.problem import PlanEvaluator

__all__ = ["report", "recovery_warning", "dominated_on_report", "robustness_score"]

logger = logging.getLogger("moo_compress.search")




def robustness_score(front: pd.DataFrame, prefix: str, robustness: str) -> np.ndarray:
    """Robustness in the space's metric, higher-is-better."""
    values = front[f"{prefix}{robustness}"].to_numpy(float)
    return values if ROBUSTNESS_HIGHER_IS_BETTER[robustness] else -values



def _interval_columns(prefix: str, name: str, interval: Any) -> dict[str, float]:
    return {f"{prefix}{name}": interval.estimate, f"{prefix}{name}_low": interval.low,
            f"{prefix}{name}_high": interval.high}



def report(front: pd.DataFrame, evaluator: PlanEvaluator, reference_plan: CompressionPlan,
           objectives: Objectives) -> tuple[pd.DataFrame, dict[str, Any]]:
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
        if not rec.ok:
            raise MooCompressError(f"the {name} model failed on the report split: {rec.error}")
    corr, sev = objectives.corruptions, objectives.severities
    ref_out = ref.outcomes(corr, sev)
    orig_out = original.outcomes(corr, sev)
    outcomes: list[Outcomes | None] = []
    rows: list[dict[str, Any]] = []
    for record in records[2:]:
        if not record.ok:
            outcomes.append(None)
            rows.append({f"final/{c}": math.nan for c in METRIC_COLUMNS})
            continue
        metrics = record_metrics(record, ref, corr, sev)
        out = record.outcomes(corr, sev)
        outcomes.append(out)
        claims = plan_claims(out, ref_out, labels)
        row = {f"final/{k}": v for k, v in metrics.items() if k in METRIC_COLUMNS or k.startswith(("acc/", "family/"))}
        for name in ("clean_delta", "mca_delta", "mce", "relative_mce"):
            row.update(_interval_columns("final/", name, claims[name]))
        against_original = plan_claims(out, orig_out, labels)  # no loss against the original hides behind a tie
        for name in ("clean_delta", "mca_delta"):
            row.update(_interval_columns("final/", f"orig_{name}", against_original[name]))
        row["final/relative_mce"] = claims["relative_mce"].estimate  # NaN where undefined
        row.update({"final/worst_class": claims["worst_class"],
                    **_interval_columns("final/", "worst_class_delta", claims["worst_class_delta"]),
                    "final/worst_corruption": claims["worst_corruption"],
                    **_interval_columns("final/", "worst_corruption_delta", claims["worst_corruption_delta"]),
                    "final/changed_predictions": claims["changed"], "final/n_clean": claims["n_clean"],
                    "final/n_corrupted": claims["n_corrupted"]})
        rows.append(row)
    front = pd.concat([front.reset_index(drop=True), pd.DataFrame(rows)], axis=1)
    for c in LATENCY_FIELDS:  # a property of the deployed structure, measured once: the same on every split
        if c in front:
            front[f"final/{c}"] = front[c]
    front["dominated_on_report_by"] = dominated_on_report(front, objectives.robustness, objectives.latency)
    front["tied_with"] = _ties(front, outcomes)
    recovery = plan_claims(ref_out, orig_out, labels)
    base = {
        "reference": record_metrics(ref, ref, corr, sev),
        "original": record_metrics(original, ref, corr, sev),
        "recovery": {k: (v.to_dict() if hasattr(v, "to_dict") else v) for k, v in recovery.items()},
        "n_clean": ref.n_clean,
        "n_corrupted": ref.n_corrupted // max(1, len(corr) * len(sev)),
        "split": spec.split,
    }
    flagged = int(front["dominated_on_report_by"].notna().sum())
    logger.info(f"report: {len(front)} plans, the reference and the original measured on {base['n_clean']} clean and "
        f"{base['n_corrupted']} corrupted {spec.split}-split images per (corruption, severity); "
        f"{flagged} plan(s) dominated on the report split (flagged)")
    warning = recovery_warning(recovery, base)
    if warning:
        base["recovery"]["warning"] = warning
        logger.warning(warning)
    return front, base



def recovery_warning(recovery: dict[str, Any], base: dict[str, Any]) -> str | None:
    """A warning when the space's recovery costs the uncompressed model clean accuracy or mean corruption
    accuracy beyond the noise (the paired interval wholly below zero) on the report split (None otherwise).

    ``recovery``: the paired claims of the reference against the original (``clean_delta``, ``mca_delta``).
    """
    losses = [f"{what} {-claim.estimate:.1f} points [{-claim.high:.1f}, {-claim.low:.1f}]"
              for what, claim in (("clean accuracy", recovery.get("clean_delta")),
                                  ("mean corruption accuracy", recovery.get("mca_delta")))
              if claim is not None and claim.high < 0]
    if not losses:
        return None
    return (f"the space's recovery costs the uncompressed model {' and '.join(losses)} on {base['n_clean']:,} "
            f"{base['split']}-split images (original {base['original']['clean_accuracy']:.2f}% clean, "
            f"reference {base['reference']['clean_accuracy']:.2f}%); every plan's deltas against the original "
            "are reported beside those against the reference (orig_* intervals); lower recovery.finetune_lr (or "
            "finetune_steps), or distil from the original (recovery.finetune_distill)")



def dominated_on_report(front: pd.DataFrame, robustness: str, latency: bool = False) -> pd.Series:
    """Label of a reported plan whose report-split point estimates dominate the row's, else None."""
    acc = front["final/clean_accuracy"].to_numpy(float)
    rob = robustness_score(front, "final/", robustness)
    ratio = front["final/compression_ratio"].to_numpy(float)
    # faster is better; without a latency objective every plan counts as equally fast
    speed = front["final/latency_speedup"].to_numpy(float) if latency else np.zeros(len(front))
    out: list[str | None] = []
    for i in range(len(front)):
        better = None
        for j in range(len(front)):
            if i == j or not (np.isfinite(acc[j]) and np.isfinite(rob[j])):
                continue
            ge = acc[j] >= acc[i] and rob[j] >= rob[i] and ratio[j] >= ratio[i] and speed[j] >= speed[i]
            gt = acc[j] > acc[i] or rob[j] > rob[i] or ratio[j] > ratio[i] or speed[j] > speed[i]
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
