"""Recovery as a fidelity: the expensive recovery level is spent on the plans that can reach the front.

Every candidate is screened and selected under the space's recovery (the cheap level: batch-norm
re-estimation). Fine-tuning costs a minute or more per plan on a CPU, so after selection the
*promotion* stage gives it (the space's ``promote.recovery``, the expensive level) to at most
``promote.plans`` contenders, in batches of one per worker:

1. Before each batch, every contender not yet promoted gets a *predicted* recovered point: the expensive
   level closes the same fraction of its gap to the *target* (in clean accuracy and robustness, separately;
   the target is the better of the run's reference and the uncompressed model under the expensive level)
   as the most any promoted plan closed so far (all of it before the first batch: optimistic).
2. The contenders whose predicted point adds most hypervolume to the current front (the selected plans
   and the promoted ones measured so far) are promoted next; a plan whose prediction adds nothing is not.
3. Promoted plans are measured on the selection images against the run's reference, and join the front
   as plans of their own (``P90-C4-Q5+kd100``: the same compression, the expensive recovery), so the
   front and the recommendations are decided on measured numbers only.

With the first batch (one worker fewer plans, so that no worker waits), the uncompressed model under the
expensive level is checked against the original on the same images, so the run states what the level does
on its own; until then the target is the best clean accuracy and robustness of the reference and the
front. Every plan's deltas stay against the run's reference (the cheap level's uncompressed model, or the
original when that one is damaged), which the reference check has already vetted.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from moo_compress.compress import CompressionPlan, RecoveryConfig
from moo_compress.search.context import SearchContext
from moo_compress.search.fidelity import Promotion
from moo_compress.search.objectives import record_metrics
from moo_compress.search.pareto import hypervolume, pareto_mask
from moo_compress.search.progress import Progress
from moo_compress.search.recommend import recommend
from moo_compress.search.records import Front
from moo_compress.search.reference import ReferenceCheck, checked, measure_windows, search_windows
from moo_compress.search.screening import Screening
from moo_compress.search.selection import measured_points, stage_columns
from moo_compress.search.stages import Selection

__all__ = ["Promotion", "PromotionSummary", "promote_stage", "predicted_points"]

logger = logging.getLogger("moo_compress.search")

#: A plan's gap to the target (objective units: fractions, 0.01 = one point) below which the fraction it closed
#: is not learned from (a fraction of a near-zero gap is noise).
_MIN_LOSS = 0.01


@dataclass(frozen=True)
class PromotionSummary:
    """What the promotion stage did (``knees.json``'s ``baseline.promotion``).

    Attributes:
        level: The expensive level's name (e.g. ``kd100``).
        recovery: The expensive level, every field (defaults included).
        check: The uncompressed model under it against the original (see ``ReferenceCheck.to_dict``; empty when
            no plan was promoted: it is measured with the first batch).
        promoted: Labels of the plans promoted, in order.
        onto_front: Labels of the promoted plans on the front after the stage.
        fraction: The largest fraction of a plan's gap to the target the level closed (clean, robustness; NaN
            where no promoted plan had a gap).
        seconds: Wall time of the stage.
    """

    level: str
    recovery: dict[str, Any]
    check: dict[str, Any]
    promoted: tuple[str, ...]
    onto_front: tuple[str, ...]
    fraction: tuple[float, float]
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        """As ``knees.json`` holds it."""
        return {**dataclasses.asdict(self), "promoted": list(self.promoted), "onto_front": list(self.onto_front),
                "fraction": list(self.fraction)}


def predicted_points(F: np.ndarray, target: np.ndarray, fraction: np.ndarray) -> np.ndarray:
    """Predicted objective vectors after the expensive level: ``fraction`` of each plan's gap to ``target`` (the
    better of the run's reference and the uncompressed model under the expensive level) closed, in clean accuracy
    and robustness (the first two objectives); the other objectives unchanged."""
    F = np.array(F, float, ndmin=2)
    gap = np.maximum(F[:, :2] - target[:2], 0.0)
    out = F.copy()
    out[:, :2] = F[:, :2] - fraction * gap
    return out


def _learned(cheap: np.ndarray, promoted: np.ndarray, target: np.ndarray, fraction: np.ndarray) -> np.ndarray:
    """``fraction`` raised to the share of its gap to ``target`` this plan's expensive level closed (where it had
    one)."""
    loss = cheap[:2] - target[:2]
    gained = cheap[:2] - promoted[:2]
    out = fraction.copy()
    for j in range(2):
        if loss[j] > _MIN_LOSS:
            out[j] = max(out[j], gained[j] / loss[j]) if math.isfinite(out[j]) else gained[j] / loss[j]
    return out


def _next_batch(candidates: pd.DataFrame, front_F: np.ndarray, target: np.ndarray, fraction: np.ndarray,
                point: np.ndarray, size: int) -> list[int]:
    """Rows of ``candidates`` whose predicted points add most hypervolume to ``front_F`` (none that add nothing)."""
    if candidates.empty:
        return []
    optimistic = np.where(np.isfinite(fraction), fraction, 1.0)
    predicted = predicted_points(np.vstack(candidates["_select_F"].to_numpy()), target, optimistic)
    base = hypervolume(front_F, point)
    gains = np.array([hypervolume(np.vstack([front_F, p]), point) - base for p in predicted])
    order = [i for i in np.argsort(-gains, kind="stable") if gains[i] > 1e-12]
    return order[:size]


def _rows(screening: Screening, candidates: pd.DataFrame, records: list[Any], level: RecoveryConfig,
          images: int) -> pd.DataFrame:
    """The rows of the candidates promoted to ``level`` from their records on ``images`` selection images per cell."""
    metrics, F, feasible = measured_points(records, screening.racer.reference_at(images), screening.objectives)
    rows = candidates.copy()
    for column in stage_columns(rows):
        rows[f"select/{column}"] = [m.get(column, math.nan) if m else math.nan for m in metrics]
    for record in records:
        if not record.ok:
            logger.warning(f"promotion: {record.label}+{level.level} failed: {record.error}")
    rows["promoted_from"] = candidates["label"].to_numpy()
    rows["label"] = [f"{label}+{level.level}" for label in candidates["label"]]
    rows["plan_key"] = [r.plan_key for r in records]
    rows["plan"] = [r.plan for r in records]
    rows["recovery_level"] = level.level
    rows["images_per_cell"] = images
    rows["status"] = [r.status for r in records]
    rows["error"] = [r.error for r in records]
    rows["seconds"] = [r.seconds for r in records]
    rows["cache_hit"] = [r.cache_hit for r in records]
    rows["_select_F"] = list(F)
    rows["_feasible"] = feasible
    return rows


@dataclass
class _Level:
    """The expensive level's own check, measured with the first batch (so no worker waits for it alone)."""

    plan: CompressionPlan
    check: ReferenceCheck | None = None
    F: np.ndarray | None = None

    def take(self, ctx: SearchContext, screening: Screening, records: list[Any], images: int) -> None:
        self.check = checked(ctx, self.plan, records, images)
        objectives = screening.objectives
        self.F = objectives.objective_vector(record_metrics(records[0], screening.racer.reference_at(images),
                                                            objectives.corruptions, objectives.severities))
        effect = ("costs the uncompressed model beyond the noise; its plans are still compared with the run's "
                  "reference, never with that weakened model" if self.check.damaged else
                  "leaves the uncompressed model within the noise or better")
        (logger.warning if self.check.damaged else logger.info)(
            f"promotion: the expensive recovery level {self.plan.recovery.level} {effect} ({self.check.deltas()})")


def promote_stage(ctx: SearchContext, screening: Screening, selection: Selection,
                  progress: Progress) -> tuple[Selection, PromotionSummary | None]:
    """The selection with the promoted plans measured and the front decided again (see the module docstring).

    Returns the new selection (its ``front``, ``keys`` and ``picks``) and what the stage did (None when off).
    """
    promotion = ctx.promotion
    if not promotion.enabled or selection.spec is None:
        return selection, None
    started = time.perf_counter()
    level = promotion.recovery
    objectives, images = screening.objectives, ctx.select_images
    frame = screening.frame.set_index("plan_key")
    contenders = frame.loc[[k for k in selection.keys if k in frame.index]].reset_index()
    selected = selection.front.table.copy()
    select_F = {k: objectives.objective_vector({c: row[f"select/{c}"] for c in stage_columns(selected)})
                for k, row in selected.set_index("plan_key").iterrows()}
    windows = len(search_windows(ctx, images))
    progress.start("promotion", (min(promotion.plans, len(contenders)) + 2) * windows, [], bound=True)
    contenders = contenders[contenders["plan_key"].isin(select_F)].copy()  # measured at selection
    contenders["_select_F"] = [select_F[k] for k in contenders["plan_key"]]
    reference = objectives.objective_vector(selection.reference)
    own = _Level(CompressionPlan(recovery=level))
    point, fraction = objectives.reference_point(), np.full(2, math.nan)
    promoted: list[pd.DataFrame] = []
    while contenders.shape[0] and sum(len(p) for p in promoted) < promotion.plans:
        front_F = np.vstack(list(select_F.values()) + [f for p in promoted for f, ok in
                                                      zip(p["_select_F"], p["_feasible"], strict=True) if ok])
        # until the level's own effect is measured, a plan might reach the best accuracy and robustness in sight
        target = np.minimum(reference, front_F.min(axis=0)) if own.F is None else np.minimum(reference, own.F)
        size = min(max(1, ctx.executor.workers - (own.F is None)), promotion.plans - sum(len(p) for p in promoted))
        batch = _next_batch(contenders, front_F, target, fraction, point, size)
        if not batch:
            break
        chosen = contenders.iloc[batch]
        contenders = contenders.drop(index=chosen.index)
        extra = [own.plan, CompressionPlan()] if own.F is None else []
        plans = [dataclasses.replace(CompressionPlan.from_dict(p), recovery=level) for p in chosen["plan"]]
        records = measure_windows(ctx, extra + plans, images, progress)
        if extra:
            own.take(ctx, screening, records[:2], images)
            target = np.minimum(reference, own.F)
        rows = _rows(screening, chosen, records[len(extra):], level, images)
        for cheap, new, ok in zip(chosen["_select_F"], rows["_select_F"], rows["_feasible"], strict=True):
            if ok:
                fraction = _learned(cheap, new, target, fraction)
        promoted.append(rows)
        logger.info(f"promotion: {', '.join(rows['label'])} measured; the level closes up to {_share(fraction[0])} "
                    f"of a plan's clean-accuracy gap and {_share(fraction[1])} of its robustness gap")
    check = own.check.to_dict() if own.check is not None else {}
    if not promoted:
        return selection, PromotionSummary(level.level, dataclasses.asdict(level), check, (), (),
                                           (math.nan, math.nan), time.perf_counter() - started)
    new = pd.concat(promoted, ignore_index=True)
    front = _merged_front(selected, list(select_F.values()), new)
    picks = recommend(front, selection.reference["clean_accuracy"], objectives.robustness,
                      min_ratio=ctx.settings.output.pick_min_ratio, max_drop=ctx.settings.output.pick_max_drop,
                      latency=objectives.latency)
    onto = tuple(front.loc[front["label"].isin(set(new["label"])), "label"])
    logger.info(f"promotion: {len(new)} plan(s) given {level.level}; {len(onto)} of them on the front "
                f"({', '.join(onto) or 'none'})")
    screening.frame = _with_promoted(screening.frame, new, front)
    summary = PromotionSummary(level.level, dataclasses.asdict(level), check, tuple(new["label"]), onto,
                               (float(fraction[0]), float(fraction[1])), time.perf_counter() - started)
    return dataclasses.replace(selection, front=Front(front), keys=[*selection.keys, *new["plan_key"]],
                               picks=picks), summary


def _share(value: float) -> str:
    return "?" if not math.isfinite(value) else f"{100 * value:.0f}%"


def _merged_front(selected: pd.DataFrame, selected_F: list[np.ndarray], new: pd.DataFrame) -> pd.DataFrame:
    """The non-dominated plans of the selected front and the promoted plans, on their selection numbers."""
    both = pd.concat([selected.assign(recovery_level=selected.get("recovery_level", np.nan)),
                      new.drop(columns=["_select_F", "_feasible"])], ignore_index=True)
    F = np.vstack([*selected_F, *new["_select_F"]])
    feasible = np.r_[np.ones(len(selected), bool), new["_feasible"].to_numpy(bool)]
    front = both[pareto_mask(F, feasible)].copy()
    return front.sort_values(["select/compression_ratio", "select/clean_accuracy"]).reset_index(drop=True)


def _with_promoted(frame: pd.DataFrame, new: pd.DataFrame, front: pd.DataFrame) -> pd.DataFrame:
    """The evaluations table with the promoted plans' rows (their selection numbers as their metrics)."""
    rows = new.drop(columns=["_feasible", "_F"], errors="ignore").rename(columns={"_select_F": "_F"})
    for column in stage_columns(frame):
        rows[column] = rows[f"select/{column}"]
    rows = rows[[c for c in rows.columns if not c.startswith("select/")]]
    rows["pareto"] = False
    out = pd.concat([frame, rows], ignore_index=True)
    out["selected"] = out["plan_key"].isin(set(front["plan_key"]))
    return out
