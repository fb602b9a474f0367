"""The screening stage's table: one row per distinct evaluated plan (``evaluations.csv``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from moo_compress.compress import CompressionPlan
from moo_compress.runfolder import METRIC_COLUMNS
from moo_compress.search.evaluation_record import EvaluationRecord
from moo_compress.search.objectives import Objectives
from moo_compress.search.pareto import pareto_mask

__all__ = ["EvaluationLog", "evaluation_frame", "objective_matrix"]


class EvaluationLog:
    """The evaluation records of a search, in the order they were first seen, with their generation and genes."""

    def __init__(self) -> None:
        self.records: dict[str, EvaluationRecord] = {}
        self.generation: dict[str, int] = {}
        self.genes: dict[str, dict[str, Any]] = {}

    def add(self, record: EvaluationRecord, generation: int, genes: dict[str, Any]) -> bool:
        """Adds a plan's record; False when the plan was seen before."""
        key = record.plan_key
        if key in self.records:
            return False
        self.records[key] = record
        self.generation[key] = generation
        self.genes[key] = genes
        return True

    def __len__(self) -> int:
        return len(self.records)


def objective_matrix(frame: pd.DataFrame, objectives: Objectives) -> np.ndarray:
    """The minimised objective vectors of a frame's rows (``_F``), one row each."""
    return np.vstack(frame["_F"].to_numpy()) if len(frame) else np.zeros((0, len(objectives.names)))


def evaluation_frame(log: EvaluationLog, objectives: Objectives,
                     metrics: Callable[[EvaluationRecord], dict[str, Any] | None]) -> pd.DataFrame:
    """One row per distinct evaluated plan: genes, plan, recovery level, metrics, objectives (``_F``), feasibility,
    Pareto flag.

    Args:
        log: The records.
        objectives: How metrics become objectives and constraints.
        metrics: A record's metrics against the reference on the same images (None for a failure).
    """
    rows = []
    for key, record in log.records.items():
        values = metrics(record)
        F = objectives.objective_vector(values)
        G = objectives.constraint_vector(values)
        rows.append({"plan_key": key, "generation": log.generation[key], "label": record.label,
                     **{f"gene/{k}": ("off" if v is None else v) for k, v in log.genes[key].items()},
                     "status": record.status, "error": record.error, "rung": record.rung,
                     "images_per_cell": record.images_per_cell, "stopped": record.stopped,
                     "cache_hit": record.cache_hit, "seconds": record.seconds,
                     "recovery_level": CompressionPlan.from_dict(record.plan).recovery.level,
                     **(values or {}), "feasible": values is not None and bool(np.all(G <= 0)),
                     "plan": record.plan, "_F": F})
    frame = pd.DataFrame(rows)
    for column in METRIC_COLUMNS:
        if column not in frame:  # every candidate so far failed
            frame[column] = np.nan
    frame["duplicate_of"] = _duplicates(frame, log)
    if len(frame):
        # a plan that produced the same model as an earlier one is that plan, not another point
        candidates = frame["feasible"].to_numpy() & frame["duplicate_of"].isna().to_numpy()
        frame["pareto"] = pareto_mask(objective_matrix(frame, objectives), candidates)
    else:
        frame["pareto"] = pd.Series(dtype=bool)
    return frame


def _duplicates(frame: pd.DataFrame, log: EvaluationLog) -> pd.Series:
    """Label of the first plan of the run that produced the same compressed model, else None."""
    first: dict[str, str] = {}
    out = []
    for key in frame["plan_key"] if len(frame) else []:
        record = log.records[key]
        fingerprint = record.weights_fingerprint
        if not fingerprint or not record.ok:
            out.append(None)
            continue
        out.append(first.get(fingerprint))
        first.setdefault(fingerprint, record.label)
    return pd.Series(out, index=frame.index, dtype=object)
