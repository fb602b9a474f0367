"""The stages after screening, each a function from the earlier stages' typed results to its own.

selection (:func:`select_stage`) -> report (:func:`report_stage`) -> held out (:func:`held_out_stage`)
-> deployment (:func:`deployment_stage`); :func:`finish` joins them into the run's tables.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from dataclasses import dataclass, field
from typing import Any

from moo_compress.runfolder import METRIC_COLUMNS
from moo_compress.search.candidate import EvaluationSpec
from moo_compress.search.context import SearchContext
from moo_compress.search.deployment import deployed
from moo_compress.search.heldout import held_out
from moo_compress.search.latency import LATENCY_FIELDS
from moo_compress.search.objectives import record_metrics
from moo_compress.search.progress import Progress
from moo_compress.search.recommend import Pick, recommend, recommendations
from moo_compress.search.records import Front
from moo_compress.search.reporting import report
from moo_compress.search.screening import Screening
from moo_compress.search.selection import contenders, select

__all__ = ["Selection", "ReportSummary", "Reported", "select_stage", "report_stage", "held_out_stage",
           "deployment_stage", "recommended_rows", "finish"]

logger = logging.getLogger("moo_compress.search")


@dataclass(frozen=True)
class Selection:
    """The selection stage's result.

    Attributes:
        front: The selected plans (rows of the evaluations table with ``select/*`` columns).
        keys: The contenders' plan keys.
        reference: The reference's metrics on the selection images (the screening ones without selection).
        picks: The recommendations, decided on these numbers (row indices into ``front``).
        spec: The selection images' spec (None when selection is off).
    """

    front: Front
    keys: list[str]
    reference: dict[str, Any]
    picks: list[Pick]
    spec: EvaluationSpec | None
    measured: bool


@dataclass
class ReportSummary:
    """What the report, held-out and deployment stages measured beside the plans (``knees.json``'s baseline).

    Attributes:
        reference: The reference's metrics on the report split.
        original: The original model's metrics there (against the reference).
        recovery: What the recovery alone does (the reference's paired claims against the original), with
            its warning when it costs either beyond the noise.
        n_clean: Clean report images.
        n_corrupted: Report images per (corruption, severity).
        split: The split reported on.
        heldout: The held-out stage's summary (suites, images, the reference's accuracy).
        deployed: The deployment stage's summary (ONNX files and their checks).
    """

    reference: dict[str, Any] | None = None
    original: dict[str, Any] | None = None
    recovery: dict[str, Any] | None = None
    n_clean: int | None = None
    n_corrupted: int | None = None
    split: str | None = None
    heldout: dict[str, Any] | None = None
    deployed: dict[str, Any] | None = None


@dataclass
class Reported:
    """The front through the report, held-out and deployment stages.

    Attributes:
        front: The selected plans with ``final/*``, ``heldout/*`` and ``onnx/*`` columns as measured.
        summary: What the stages measured beside the plans.
        spec: The report split's spec (None when the report is off).
    """

    front: Front
    summary: ReportSummary = field(default_factory=ReportSummary)
    spec: EvaluationSpec | None = None


def select_stage(ctx: SearchContext, screening: Screening, progress: Progress) -> Selection:
    """Brings the screening front and the plans within its noise to the selection images; keeps their front."""
    frame, racer, objectives = screening.frame, screening.racer, screening.objectives
    order_labels = screening.order_labels()
    keys = contenders(frame, screening.log.records, lambda r: racer.reference_at(int(r.images_per_cell or 0)),
                      objectives, lambda n: order_labels[:n], limit=2)
    screening_front = int(frame["pareto"].sum())
    logger.info(f"selection: the {screening_front} plans of the screening front and {len(keys) - screening_front} "
                f"within its noise are brought to {ctx.select_images} search-split images per (corruption, "
                "severity) ...")
    measured = ctx.settings.fidelity.select_images != 0
    evaluate = functools.partial(racer.extend, images=ctx.select_images) if measured else None
    # at most one record per contender and window, and the reference's own extension
    progress.start("selection", len(keys) + 2, screening.schedule.later(len(keys) // 2, 0)[2:], bound=True)
    front, reference = select(frame, keys, evaluate, ctx.reference_plan, objectives, images=ctx.select_images)
    frame["contender"] = frame["plan_key"].isin(keys)
    frame["selected"] = frame["plan_key"].isin(set(front["plan_key"]))
    metrics = (record_metrics(reference, reference, screening.spec.corruptions, screening.spec.severities)
               if reference is not None else screening.base_metrics)
    output = ctx.settings.output
    picks = recommend(front, metrics["clean_accuracy"], objectives.robustness, min_ratio=output.pick_min_ratio,
                      max_drop=output.pick_max_drop, latency=objectives.latency)
    spec = ctx.window_spec(0, ctx.select_images) if measured else None
    return Selection(Front(front), keys, metrics, picks, spec, measured=reference is not None)


def recommended_rows(selection: Selection) -> list[int]:
    """Rows of the selected front that some recommendation picked."""
    return sorted({p.row for p in selection.picks if p.row is not None})


def report_stage(ctx: SearchContext, screening: Screening, selection: Selection, progress: Progress) -> Reported:
    """Measures the selected front, the reference and the original on the report split (when asked)."""
    spec = ctx.report_spec()
    if spec is None:
        front = selection.front.table
        for c in METRIC_COLUMNS:
            front[f"final/{c}"] = front[f"select/{c}"]
        for c in LATENCY_FIELDS:
            if c in front:
                front[f"final/{c}"] = front[c]
        return Reported(Front(front))
    progress.start("report", len(selection.front) + 2, [])
    evaluator = dataclasses.replace(screening.evaluator, spec=spec)
    front, summary = report(selection.front.table, evaluator, ctx.reference_plan, screening.objectives)
    return Reported(Front(front), ReportSummary(**summary), spec)


def held_out_stage(ctx: SearchContext, screening: Screening, selection: Selection, reported: Reported,
                   progress: Progress) -> None:
    """Measures the recommendations (or the whole front) on corruptions the search never saw (when asked)."""
    which = ctx.settings.output.held_out
    if reported.spec is None or which == "off":
        return
    rows = recommended_rows(selection) if which == "recommended" else list(range(len(reported.front)))
    progress.start("held out", len(rows) + 1, [])
    evaluator = dataclasses.replace(screening.evaluator, spec=reported.spec)
    table, reported.summary.heldout = held_out(reported.front.table, rows, evaluator, ctx.held_out_spec(),
                                                  ctx.reference_plan, screening.objectives)
    reported.front = Front(table)


def deployment_stage(ctx: SearchContext, screening: Screening, selection: Selection, reported: Reported) -> None:
    """Exports the recommendations of a deployment search as ONNX files and checks them in ONNX Runtime."""
    if reported.spec is None or screening.meter is None:
        return
    table, reported.summary.deployed = deployed(reported.front.table, recommended_rows(selection),
                                                   reported.spec, ctx.out_dir / "onnx")
    reported.front = Front(table)


def finish(ctx: SearchContext, screening: Screening, selection: Selection,
           reported: Reported) -> tuple[list[dict[str, Any]], dict[str, Any], dict[str, Any]]:
    """The run's recommendations (with their report numbers), ``knees.json``'s baseline block and the
    fidelity block of ``config.yaml``."""
    summary = reported.summary
    picks = recommendations(reported.front, selection.picks, screening.objectives.robustness, summary.split)
    baseline = {"screening": screening.base_metrics, "selection": selection.reference if selection.measured else None,
                "final": summary.reference, "original": summary.original,
                "recovery": summary.recovery, "reference_plan": ctx.reference_plan.to_dict(),
                "report": {"n_clean": summary.n_clean, "n_corrupted": summary.n_corrupted, "split": summary.split},
                "heldout": summary.heldout, "deployed": summary.deployed,
                "report_on_search": ctx.settings.fidelity.report_on_search, "notes": screening.notes,
                "reference_check": screening.check.to_dict() if screening.check is not None else None}
    racer, frame, algorithm = screening.racer, screening.frame, ctx.settings.algorithm
    fidelity = {**ctx.fidelity.to_dict(), "ladder": list(ctx.ladder), "clean_multiple": ctx.clean_multiple,
                "select_images": ctx.select_images if selection.spec is not None else None,
                "alpha_per_look": racer.alpha if racer.racing else None,
                "budget_images": ctx.budget_images, "time_budget": algorithm.time_budget,
                "images_spent": racer.spent,
                "stopped": int(frame["stopped"].notna().sum()) if "stopped" in frame else 0}
    return picks, baseline, fidelity
