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
5. **Deployed** (:func:`deployed`, runs that measure latency): the recommended plans are exported as
   ONNX files into the run folder and their clean top-1 in ONNX Runtime is checked against PyTorch's
   on the same report images.
4. **Held out** (:func:`held_out`): the recommended plans (or the whole front) and the reference are
   also measured on corruptions the search never saw (:func:`held_out_corruptions`), on the same
   report images, and a plan whose robustness rank among them reverses there beyond its intervals is
   flagged.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from moo_compress.compress import CompressionPlan
from moo_compress.errors import MooCompressError
from moo_compress.evaluation.stats import paired_difference_interval
from moo_compress.runfolder import METRIC_COLUMNS
from moo_compress.search.candidate import EvaluationSpec, load_resources
from moo_compress.search.claims import LEVEL, ROBUSTNESS_HIGHER_IS_BETTER, Outcomes, half_widths, plan_claims, \
    record_outcomes, tied
from moo_compress.search.latency import LATENCY_FIELDS
from moo_compress.search.knee import (
    closest_to_ideal,
    high_tradeoff_points,
    most_robust_with_ratio,
    nbi_knee,
    smallest_within_accuracy_drop,
)
from moo_compress.search.objectives import Objectives, record_metrics
from moo_compress.search.problem import PlanEvaluator

__all__ = ["contenders", "select", "recommend", "report", "held_out", "held_out_corruptions", "rank_reversals",
           "deployed", "export_and_check", "plan_file_name", "ONNX_TOLERANCE", "HELD_OUT",
           "METRICS", "pareto_mask", "recovery_warning", "RECOVERY_LOSS"]

#: Which reported plans are measured on the held-out corruptions (``--held-out``).
HELD_OUT = ("recommended", "front", "off")

#: Most points an ONNX file's clean top-1 may differ from the PyTorch model's: weight-only (float) graphs
#: compute what PyTorch computes; int8 QDQ graphs round in ONNX Runtime's kernels.
ONNX_TOLERANCE = {"float": 0.5, "qdq": 1.0}
#: Clean-accuracy points the space's recovery may cost the uncompressed model (beyond the noise) before the
#: search warns that its reference is wrecked (fine-tuning too strong for the model: Adam at 1e-3 cost VGG-19
#: 26 points, at 1e-4 3 points; benchmarks/RESULTS.md, section "finetune-lr"). summary.md always shows the cost.
RECOVERY_LOSS = 5.0

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
    noise = [clean / 100, rob / 100, 0.0]
    if objectives.latency:  # half the interquartile range of the per-round speed-ups, on the objective's log scale
        low, high = float(record.get("latency_speedup_low", 0.0)), float(record.get("latency_speedup_high", 0.0))
        noise.append(0.5 * math.log2(high / low) if low > 0 and high >= low else 0.0)
    return np.array(noise)


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
    F_front = np.vstack(front["_F"].to_numpy()) if len(front) else np.zeros((0, len(objectives.names)))
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
        for c in _columns(rows):
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
    for c in _columns(rows):
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


def _columns(frame: pd.DataFrame) -> tuple[str, ...]:
    """The metric columns carried from stage to stage: :data:`METRICS`, and the measured latency when there is one."""
    return (*METRICS, *(c for c in LATENCY_FIELDS if c in frame))


def _robustness_score(front: pd.DataFrame, prefix: str, robustness: str) -> np.ndarray:
    """Robustness in the space's metric, higher-is-better."""
    values = front[f"{prefix}{robustness}"].to_numpy(float)
    return values if ROBUSTNESS_HIGHER_IS_BETTER[robustness] else -values


def recommend(front: pd.DataFrame, reference_accuracy: float, robustness: str, *, min_ratio: float,
              max_drop: float, prefix: str = "select/", latency: bool = False) -> list[dict[str, Any]]:
    """Knee points and user picks, decided on the ``prefix`` (selection) metrics of the front.

    Robustness is the space's metric (mean corruption accuracy, mCE or relative mCE). With ``latency``
    the knees are found in four dimensions (batch-1 latency relative to the reference, from
    ``{prefix}latency_speedup``, the fourth). Returns
    one dict per pick: ``method``, ``title``, ``row`` (in ``front``, None if no plan qualifies) and ``why``.
    """
    if front.empty:
        return []
    acc = front[f"{prefix}clean_accuracy"].to_numpy(float)
    rob = _robustness_score(front, prefix, robustness)
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
    picks: list[dict[str, Any]] = []
    if len(idx) >= 2:
        picks.append({"method": "nbi_knee", "title": "Knee: farthest from the plane through each objective's best plan",
                      "row": int(idx[nbi_knee(F)]), "why": "the best balanced trade-off: moving away from it along "
                      "the front buys little in one objective for a lot in another"})
        picks.append({"method": "closest_to_ideal", "title": "Closest to the ideal point",
                      "row": int(idx[closest_to_ideal(F)]),
                      "why": f"nearest to the (unreachable) plan that is best in {every} at once"})
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
    for c in LATENCY_FIELDS:  # a property of the deployed structure, measured once: the same on every split
        if c in front:
            front[f"final/{c}"] = front[c]
    front["dominated_on_report_by"] = _dominated(front, objectives.robustness, objectives.latency)
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
    warning = recovery_warning(recovery.get("clean_delta"), base)
    if warning:
        base["recovery"]["warning"] = warning
        log(f"warning: {warning}")
    return front, base


def recovery_warning(clean_delta: Any, base: dict[str, Any]) -> str | None:
    """A warning when the space's recovery costs the uncompressed model more than :data:`RECOVERY_LOSS`
    points of clean accuracy with the whole interval below zero (None otherwise)."""
    if clean_delta is None or not (clean_delta.high < 0 and -clean_delta.estimate >= RECOVERY_LOSS):
        return None
    return (f"the space's recovery costs the uncompressed model {-clean_delta.estimate:.1f} points of clean accuracy "
            f"[{-clean_delta.high:.1f}, {-clean_delta.low:.1f}] on {base['n_clean']:,} {base['split']}-split images "
            f"(original {base['original']['clean_accuracy']:.2f}%, reference {base['reference']['clean_accuracy']:.2f}%); "
            "the plans are compared with this weakened reference: lower recovery.finetune_lr (or finetune_steps) in "
            "the space")


def _dominated(front: pd.DataFrame, robustness: str, latency: bool = False) -> pd.Series:
    """Label of a reported plan whose report-split point estimates dominate the row's, else None."""
    acc = front["final/clean_accuracy"].to_numpy(float)
    rob = _robustness_score(front, "final/", robustness)
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


def held_out_corruptions(searched: tuple[str, ...], image_size: tuple[int, int]) -> dict[str, tuple[str, ...]]:
    """The corruptions a search never saw, by suite: ``extra``, the reference recipe's four validation
    corruptions the space does not optimise (none when it optimises all 19), and ``bar``, the ten of
    CIFAR-10-C-bar (Mintun et al., 2021), perceptually unlike the benchmark's, for 32-pixel inputs."""
    from moo_compress.data.corruptions import EXTRA_CORRUPTIONS
    from moo_compress.data.corruptions_bar import BAR_CORRUPTIONS

    suites = {"extra": tuple(c for c in EXTRA_CORRUPTIONS if c not in searched)}
    if tuple(image_size) == (32, 32):
        suites["bar"] = tuple(BAR_CORRUPTIONS)
    return {name: names for name, names in suites.items() if names}


def _mca(out: Outcomes) -> np.ndarray:
    """Per-image accuracy over every (corruption, severity) cell."""
    return out.cells.reshape(len(out.cells), -1).astype(float).mean(axis=1)


def rank_reversals(outcomes: dict[Any, tuple[np.ndarray, np.ndarray]], *, level: float = LEVEL) -> dict[Any, list[Any]]:
    """Plans whose robustness ranking reverses on held-out corruptions beyond the intervals.

    Args:
        outcomes: Per plan, its per-image mean accuracy over the searched cells and over the held-out
            cells (every plan on the same images, in the same order).
        level: Confidence level of the paired intervals.

    Returns:
        For each plan with a reversal, the plans it is confidently more robust than on the searched
        corruptions (paired interval of the difference above zero) but confidently less robust than on
        the held-out ones (interval below zero). A difference within its noise is a tie, never a reversal.
    """
    out: dict[Any, list[Any]] = {}
    for i, (searched_i, held_i) in outcomes.items():
        against = [j for j, (searched_j, held_j) in outcomes.items() if j != i
                   and paired_difference_interval(searched_i, searched_j, level=level).low > 0
                   and paired_difference_interval(held_i, held_j, level=level).high < 0]
        if against:
            out[i] = against
    return out


def held_out(front: pd.DataFrame, rows: list[int], evaluator: PlanEvaluator, spec: EvaluationSpec,
             reference_plan: CompressionPlan, objectives: Objectives,
             log: Callable[[str], None]) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Measures ``front`` rows ``rows`` and the reference on the held-out corruptions.

    ``evaluator`` carries the report spec (its records, cache hits by now, give the searched robustness);
    ``spec`` the images of the held-out measurement (the report split at its own images per cell; its
    corruptions are replaced by the held-out ones, and clean accuracy is taken on the same images).
    Adds ``heldout/mean_corruption_accuracy``, per suite ``heldout/<suite>_mca`` (percent),
    ``heldout/mca_delta`` with ``_low`` / ``_high`` (points, paired against the reference) and
    ``heldout/rank_reversal``: the measured plans this plan is confidently more robust than on the searched
    corruptions (paired 95% interval of the difference above zero) but confidently less robust than on
    the held-out ones (interval below zero). Rows not measured hold NaN. Returns the front and a summary
    (corruptions by suite, images, the reference's held-out accuracy; ``suites`` empty when nothing is
    held out).
    """
    size = tuple(load_resources(evaluator.spec).clean.images.shape[1:3])
    suites = held_out_corruptions(objectives.corruptions, size)
    names = tuple(c for suite in suites.values() for c in suite)
    front = front.copy()
    for column in ("heldout/mean_corruption_accuracy", "heldout/mca_delta", "heldout/mca_delta_low",
                   "heldout/mca_delta_high", *(f"heldout/{s}_mca" for s in suites)):
        front[column] = math.nan
    front["heldout/rank_reversal"] = pd.Series([None] * len(front), index=front.index, dtype=object)
    info: dict[str, Any] = {"suites": {k: list(v) for k, v in suites.items()}, "rows": list(rows)}
    if not names or not rows:
        log("held out: nothing is held out (the space optimises every corruption of the reference recipe)"
            if not names else "held out: no plan to measure")
        return front, info
    spec = dataclasses.replace(spec, corruptions=names, clean_whole_split=False, clean_fingerprint="",
                               corrupted_fingerprint="", keep_models=evaluator.spec.keep_models).resolved()
    plans = [reference_plan] + [CompressionPlan.from_dict(front["plan"].iloc[i]) for i in rows]
    records = dataclasses.replace(evaluator, spec=spec)(plans)
    searched = dataclasses.replace(evaluator, on_record=None)(plans)  # the report-split records: cache hits
    if records[0]["status"] != "ok":
        raise MooCompressError(f"the reference failed on the held-out corruptions: {records[0]['error']}")
    sev = objectives.severities
    ref_out = record_outcomes(records[0], names, sev)
    ref_mca = _mca(ref_out)
    measured: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    for i, record, report_record in zip(rows, records[1:], searched[1:]):
        if record["status"] != "ok" or report_record["status"] != "ok":
            continue
        out = record_outcomes(record, names, sev)
        front.loc[front.index[i], "heldout/mean_corruption_accuracy"] = 100 * float(out.cells.mean())
        for suite, members in suites.items():
            cells = out.cells[:, [names.index(c) for c in members]]
            front.loc[front.index[i], f"heldout/{suite}_mca"] = 100 * float(cells.mean())
        delta = paired_difference_interval(_mca(out), ref_mca, level=LEVEL)
        front.loc[front.index[i], ["heldout/mca_delta", "heldout/mca_delta_low", "heldout/mca_delta_high"]] = \
            [100 * delta.estimate, 100 * delta.low, 100 * delta.high]
        measured[i] = (_mca(record_outcomes(report_record, objectives.corruptions, sev)), _mca(out))
    flags = rank_reversals({i: pair for i, pair in measured.items()})
    for i, against in flags.items():
        front.at[front.index[i], "heldout/rank_reversal"] = "; ".join(str(front["label"].iloc[j]) for j in against)
    reversals = len(flags)
    info.update({"reference_mca": 100 * float(ref_out.cells.mean()), "n_corrupted": int(len(ref_out.cells)), "split": spec.split,
                 "reference_suites": {s: 100 * float(ref_out.cells[:, [names.index(c) for c in m]].mean())
                                      for s, m in suites.items()}})
    log(f"held out: {len(measured)} plan(s) and the reference measured on {len(names)} corruption(s) the search "
        f"never saw ({', '.join(f'{k}: {len(v)}' for k, v in suites.items())}), {info['n_corrupted']} "
        f"{spec.split}-split images per (corruption, severity); reference {info['reference_mca']:.2f}%; {reversals} plan(s) "
        "whose robustness rank reverses there beyond its intervals (flagged)")
    return front, info


def plan_file_name(arch: str, plan: CompressionPlan, suffix: str) -> str:
    """``<arch>-<label>-<key>`` + ``suffix``: a file name for a plan's exported model (a model of one's own
    is named by its file-name-safe slug, never its path)."""
    from moo_compress.models.sources import is_source, source_slug

    name = source_slug(arch) if is_source(arch) else arch
    return f"{name}-{plan.label().replace(' ', '_')}-{plan.key()[:8]}{suffix}"


def export_and_check(spec: EvaluationSpec, plans: list[CompressionPlan], files: dict[str, Path],
                     log: Callable[[str], None]) -> dict[str, dict[str, Any]]:
    """Writes each plan's compressed model as an ONNX file (``files``: plan key -> path) and measures its
    clean top-1 in ONNX Runtime and in PyTorch on the clean images of ``spec``.

    Returns plan key -> ``{"path", "kind" (float | qdq), "bytes", "removed_filters", "images",
    "onnx_accuracy", "torch_accuracy" (percent), "gap" (points, ONNX minus PyTorch), "within"
    (|gap| <= :data:`ONNX_TOLERANCE` of its kind)}``.
    """
    from moo_compress.compress import export_onnx
    from moo_compress.evaluation import Evaluator
    from moo_compress.search.candidate import compressed_model
    from moo_compress.evaluation.onnx_model import OnnxModel

    res = load_resources(spec)
    pre = res.pretrained
    size = pre.input_size or (3, *res.clean.images.shape[1:3])
    images, labels = res.clean.images, res.clean.labels
    out = {}
    for plan in plans:
        model = compressed_model(spec, res, plan)  # the one kept by the report stage, when it kept it
        result = export_onnx(model, None, files[plan.key()], mean=pre.mean, std=pre.std, input_size=size,
                             calibration=res.calibration, arch=spec.arch)
        onnx_accuracy = 100.0 * OnnxModel(result.path).accuracy(images, labels)
        torch_accuracy = 100.0 * Evaluator(model, mean=pre.mean, std=pre.std, device="cpu").accuracy(images, labels)
        gap = onnx_accuracy - torch_accuracy
        out[plan.key()] = {"path": str(result.path), "kind": result.kind, "bytes": result.bytes,
                           "removed_filters": result.removed_filters, "images": int(len(images)),
                           "onnx_accuracy": onnx_accuracy, "torch_accuracy": torch_accuracy, "gap": gap,
                           "within": abs(gap) <= ONNX_TOLERANCE[result.kind]}
        log(f"  ONNX {result.path} ({'int8 QDQ' if result.kind == 'qdq' else 'float weights'}, {result.bytes:,} "
            f"bytes): clean top-1 {onnx_accuracy:.2f}% in ONNX Runtime, {torch_accuracy:.2f}% in PyTorch on the same "
            f"{len(images):,} images ({gap:+.2f} points; allowed {ONNX_TOLERANCE[result.kind]:g})")
    return out


def deployed(front: pd.DataFrame, rows: list[int], spec: EvaluationSpec, folder: Path,
             log: Callable[[str], None]) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Exports the ``front`` rows ``rows`` as ONNX files into ``folder`` and checks them (:func:`export_and_check`)
    on the clean images of ``spec`` (the report split). Adds ``onnx/path``, ``onnx/kind``, ``onnx/accuracy``,
    ``onnx/gap`` and ``onnx/within`` (NaN / None for rows not exported)."""
    front = front.copy()
    for column in ("onnx/path", "onnx/kind", "onnx/within"):
        front[column] = pd.Series([None] * len(front), index=front.index, dtype=object)
    for column in ("onnx/accuracy", "onnx/torch_accuracy", "onnx/gap"):
        front[column] = math.nan
    if not rows:
        return front, {"rows": [], "images": 0}
    plans = [CompressionPlan.from_dict(front["plan"].iloc[i]) for i in rows]
    files = {p.key(): folder / plan_file_name(spec.arch, p, ".onnx") for p in plans}
    checked = export_and_check(spec, plans, files, log)
    for i, plan in zip(rows, plans):
        c = checked[plan.key()]
        index = front.index[i]
        front.at[index, "onnx/path"] = str(Path(c["path"]).name)
        front.at[index, "onnx/kind"] = c["kind"]
        front.at[index, "onnx/within"] = bool(c["within"])
        front.loc[index, ["onnx/accuracy", "onnx/torch_accuracy", "onnx/gap"]] = \
            [c["onnx_accuracy"], c["torch_accuracy"], c["gap"]]
    images = next(iter(checked.values()))["images"]
    outside = [front["label"].iloc[i] for i, plan in zip(rows, plans) if not checked[plan.key()]["within"]]
    log(f"deployed: {len(rows)} recommended plan(s) exported to {folder}/ and run in ONNX Runtime on {images:,} "
        f"{spec.split}-split images; " + (f"outside the tolerance: {', '.join(outside)}" if outside else
                                          "every one within the tolerance of its PyTorch top-1"))
    return front, {"rows": list(rows), "images": images, "folder": folder.name, "tolerance": dict(ONNX_TOLERANCE)}
