"""Typed records of the reported front: what each stage measured of a plan, read from the front's table once.

The front travels between the stages as :class:`Front`: its table (``pareto.csv``, whose columns the run
folder's format owns, :mod:`moo_compress.runfolder`) and, for code that reads a plan's numbers, a typed
:class:`PlanRecord` per row (metrics, intervals, latency, held-out robustness, the ONNX check, flags). The
table's column names are read here and nowhere else in the search's later stages.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from moo_compress.runfolder import METRIC_COLUMNS

__all__ = ["Claim", "LatencyRecord", "OnnxCheck", "HeldOutRecord", "PlanRecord", "Front", "INTERVAL_METRICS"]

#: The report's paired claims of a plan (``final/<name>`` with ``_low`` / ``_high``); ``orig_*`` are against
#: the original model (no recovery), the others against the run's reference.
INTERVAL_METRICS = ("clean_delta", "mca_delta", "mce", "relative_mce", "worst_class_delta", "worst_corruption_delta",
                    "orig_clean_delta", "orig_mca_delta")


def _float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _float_or_none(value: Any) -> float | None:
    value = _float(value)
    return value if math.isfinite(value) else None


def _present(value: Any) -> bool:
    """A flag column's cell holds something (pandas stores an unset float cell as NaN)."""
    return not (isinstance(value, float) and math.isnan(value))


def _item(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


@dataclass(frozen=True)
class Claim:
    """An estimate with its 95% interval (points, or mCE units)."""

    estimate: float
    low: float
    high: float

    def to_dict(self) -> dict[str, float]:
        """``{"estimate", "low", "high"}`` (``knees.json``)."""
        return {"estimate": self.estimate, "low": self.low, "high": self.high}


@dataclass(frozen=True)
class LatencyRecord:
    """A plan's measured batch-1 latency and its speed-up over the reference timed in the same rounds."""

    ms: float
    low_ms: float
    high_ms: float
    speedup: float
    speedup_low: float
    speedup_high: float
    batch_ms: float | None
    batch_speedup: float | None

    @classmethod
    def from_row(cls, row: pd.Series) -> LatencyRecord | None:
        """The latency columns of a front row (None where latency was not measured)."""
        if not math.isfinite(_float(row.get("latency_ms"))):
            return None
        return cls(ms=_float(row["latency_ms"]), low_ms=_float(row["latency_low_ms"]),
                   high_ms=_float(row["latency_high_ms"]), speedup=_float(row["latency_speedup"]),
                   speedup_low=_float(row["latency_speedup_low"]), speedup_high=_float(row["latency_speedup_high"]),
                   batch_ms=_float_or_none(row.get("latency_batch_ms")),
                   batch_speedup=_float_or_none(row.get("latency_batch_speedup")))

    def to_dict(self) -> dict[str, float | None]:
        """The ``latency`` block of a recommendation in ``knees.json``."""
        return {"ms": self.ms, "low_ms": self.low_ms, "high_ms": self.high_ms, "speedup": self.speedup,
                "speedup_low": self.speedup_low, "speedup_high": self.speedup_high, "batch_ms": self.batch_ms,
                "batch_speedup": self.batch_speedup}


@dataclass(frozen=True)
class OnnxCheck:
    """A recommendation's ONNX file and its clean top-1 in ONNX Runtime against PyTorch's, same images."""

    file: str
    kind: str
    accuracy: float
    torch_accuracy: float
    gap: float
    within_tolerance: bool

    @classmethod
    def from_row(cls, row: pd.Series) -> OnnxCheck | None:
        """The ``onnx/*`` columns of a front row (None where the plan was not exported)."""
        if not isinstance(row.get("onnx/path"), str):
            return None
        return cls(file=f"onnx/{row['onnx/path']}", kind=str(row["onnx/kind"]), accuracy=_float(row["onnx/accuracy"]),
                   torch_accuracy=_float(row["onnx/torch_accuracy"]), gap=_float(row["onnx/gap"]),
                   within_tolerance=bool(row["onnx/within"]))

    def to_dict(self) -> dict[str, Any]:
        """The ``onnx`` block of a recommendation in ``knees.json``."""
        return {"file": self.file, "kind": self.kind, "accuracy": self.accuracy, "torch_accuracy": self.torch_accuracy,
                "gap": self.gap, "within_tolerance": self.within_tolerance}


@dataclass(frozen=True)
class HeldOutRecord:
    """A plan's robustness on the corruptions the search never saw, paired against the reference."""

    mean_corruption_accuracy: float
    mca_delta: Claim
    rank_reversal: str | None

    @classmethod
    def from_row(cls, row: pd.Series) -> HeldOutRecord | None:
        """The ``heldout/*`` columns of a front row (None where the plan was not measured there)."""
        if not math.isfinite(_float(row.get("heldout/mca_delta"))):
            return None
        reversal = row.get("heldout/rank_reversal")
        return cls(mean_corruption_accuracy=_float(row["heldout/mean_corruption_accuracy"]),
                   mca_delta=Claim(_float(row["heldout/mca_delta"]), _float(row["heldout/mca_delta_low"]),
                                   _float(row["heldout/mca_delta_high"])),
                   rank_reversal=reversal if isinstance(reversal, str) else None)

    def to_dict(self) -> dict[str, Any]:
        """The ``heldout`` block of a recommendation in ``knees.json``."""
        return {"mean_corruption_accuracy": self.mean_corruption_accuracy, "mca_delta": self.mca_delta.to_dict(),
                "rank_reversal": self.rank_reversal}


@dataclass(frozen=True)
class PlanRecord:
    """One reported plan: its final metrics (report split, else selection), intervals, latency and checks.

    Attributes:
        key: The plan's key.
        label: Its short label (``P50-C16-Q8``).
        plan: The plan as a dict (:meth:`~moo_compress.compress.CompressionPlan.to_dict`).
        metrics: The final metrics (:data:`~moo_compress.runfolder.METRIC_COLUMNS`).
        intervals: The report's paired claims by name (:data:`INTERVAL_METRICS`; none without a report).
        latency: Measured latency, if any.
        heldout: Held-out robustness, if measured.
        onnx: The ONNX check, if exported.
        flags: ``worst_class``, ``worst_corruption``, ``dominated_on_report_by``, ``tied_with`` where the
            report wrote them (None: written, and not flagged).
    """

    key: str
    label: str
    plan: dict[str, Any]
    metrics: dict[str, float]
    intervals: dict[str, Claim]
    latency: LatencyRecord | None
    heldout: HeldOutRecord | None
    onnx: OnnxCheck | None
    flags: dict[str, Any]

    @classmethod
    def from_row(cls, row: pd.Series) -> PlanRecord:
        """The record of one row of the front's table."""
        intervals = {name: Claim(_float(row[f"final/{name}"]), _float(row[f"final/{name}_low"]),
                                 _float(row[f"final/{name}_high"]))
                     for name in INTERVAL_METRICS if f"final/{name}_low" in row}
        flags = {name: _item(row[name]) for name in ("worst_class", "worst_corruption", "dominated_on_report_by",
                                                     "tied_with") if name in row and _present(row[name])}
        return cls(key=str(row["plan_key"]), label=str(row["label"]), plan=row["plan"],
                   metrics={c: _float(row[f"final/{c}"]) for c in METRIC_COLUMNS}, intervals=intervals,
                   latency=LatencyRecord.from_row(row), heldout=HeldOutRecord.from_row(row),
                   onnx=OnnxCheck.from_row(row), flags=flags)


@dataclass
class Front:
    """The front between stages: its table (the run folder's ``pareto.csv`` columns) and typed records.

    Attributes:
        table: One row per plan, sorted by compression ratio.
    """

    table: pd.DataFrame

    def __len__(self) -> int:
        return len(self.table)

    def record(self, row: int) -> PlanRecord:
        """The typed record of row ``row``."""
        return PlanRecord.from_row(self.table.iloc[row])

    @property
    def records(self) -> tuple[PlanRecord, ...]:
        """Every row's typed record."""
        return tuple(self.record(i) for i in range(len(self.table)))
