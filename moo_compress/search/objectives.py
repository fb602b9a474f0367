"""From evaluation records to metrics, pymoo objectives (minimised) and constraints (<= 0 feasible).

Objectives, all turned into minimisation as pymoo expects:

1. clean accuracy: ``-accuracy`` (fraction);
2. robustness: ``-mean corruption accuracy`` (fraction), or ``mCE / 100`` or ``relative mCE / 100``
   against the uncompressed baseline evaluated on the same images;
3. compression ratio: ``-log2(ratio)`` (log-scaled inside the optimiser; reported raw);
4. optionally, measured batch-1 latency of the deployed model (:mod:`~moo_compress.search.latency`):
   ``log2(latency / reference latency)``, the ratio estimated as the median of per-round ratios with
   the reference timed in alternation (``1 / latency_speedup``), so that load on the machine between
   one plan's measurement and another's cancels.

Constraints: ``(baseline accuracy - accuracy) - max_accuracy_drop <= 0`` (points),
``(min_ratio - ratio) / min_ratio <= 0`` and ``(latency - max_latency_ms) / max_latency_ms <= 0``. A
failed candidate gets the worst objective values and violates every constraint.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from moo_compress.errors import ConfigError
from moo_compress.evaluation import metrics as mt
from moo_compress.search.evaluation_record import EvaluationRecord
from moo_compress.search.latency import LATENCY_FIELDS

__all__ = ["OBJECTIVE_LABELS", "Objectives", "record_metrics"]

#: Human-readable axis labels (units and the direction of better) per metric column.
OBJECTIVE_LABELS = {
    "clean_accuracy": "clean accuracy (%) ↑",
    "mean_corruption_accuracy": "mean corruption accuracy (%) ↑",
    "mce": "mCE vs. baseline (%) ↓",
    "relative_mce": "relative mCE vs. baseline (%) ↓",
    "compression_ratio": "compression ratio (×) ↑",
    "latency_ms": "latency, batch 1 (ms) ↓",
}


def _table(record: EvaluationRecord) -> dict[tuple[str, int], float]:
    out = {}
    for key, acc in record.corruption_accuracy.items():
        name, sev = key.rsplit("/", 1)
        out[(name, int(sev))] = float(acc)
    return out


def record_metrics(record: EvaluationRecord | Mapping[str, Any], baseline: EvaluationRecord | Mapping[str, Any] | None,
                   corruptions: tuple[str, ...], severities: tuple[int, ...]) -> dict[str, Any]:
    """Metrics of one ok record (accuracies in percent), relative ones against ``baseline``.

    Returns ``clean_accuracy``, ``mean_corruption_accuracy``, ``mce``, ``relative_mce``, ``clean_delta``
    (points against ``baseline``),
    ``compression_ratio``, per-family means (``family/<name>``), per-corruption means
    (``acc/<corruption>``, mean over severities) and the record's latency fields when it has them.
    """
    record = EvaluationRecord.coerce(record)
    baseline = None if baseline is None else EvaluationRecord.coerce(baseline)
    acc = _table(record)
    errors = {k: 1 - v for k, v in acc.items()}
    kw = {"corruptions": corruptions, "severities": severities}
    out: dict[str, Any] = {
        "clean_accuracy": 100 * record.clean_accuracy,
        "mean_corruption_accuracy": 100 * mt.mean_corruption_accuracy(acc, **kw),
        "compression_ratio": record.compression_ratio,
    }
    if baseline is not None:
        out["clean_delta"] = 100 * (record.clean_accuracy - baseline.clean_accuracy)
        base_errors = {k: 1 - v for k, v in _table(baseline).items()}
        try:
            out["mce"] = mt.mce(errors, base_errors, **kw)
        except ConfigError:
            out["mce"] = math.nan
        try:
            out["relative_mce"] = mt.relative_mce(errors, 1 - record.clean_accuracy, base_errors,
                                                  1 - baseline.clean_accuracy, **kw)
        except ConfigError:
            out["relative_mce"] = math.nan
    out.update({f"family/{f}": 100 * v for f, v in mt.accuracy_by_family(acc, **kw).items()})
    out.update({f"acc/{c}": 100 * v for c, v in mt.accuracy_by_corruption(acc, **kw).items()})
    out.update({k: record.latency[k] for k in LATENCY_FIELDS if k in record.latency})
    return out


@dataclass(frozen=True)
class Objectives:
    """How records become pymoo's ``F`` and ``G`` for one search (pure data: deep-copies cheaply).

    Attributes:
        robustness: ``mean_corruption_accuracy``, ``mce`` or ``relative_mce``.
        corruptions: Corruptions the robustness metrics average over.
        severities: Severities the robustness metrics average over.
        baseline_accuracy: Baseline clean accuracy (%) at the screening fidelity.
        max_accuracy_drop: Constraint (points), or None.
        min_compression_ratio: Constraint, or None.
        latency: Batch-1 latency (``latency_ms``) is a fourth objective.
        max_latency_ms: Constraint: latency at most this many milliseconds, or None.
        baseline_latency_ms: The reference's latency (the latency objective is relative to it).
    """

    robustness: str
    corruptions: tuple[str, ...]
    severities: tuple[int, ...]
    baseline_accuracy: float
    max_accuracy_drop: float | None = None
    min_compression_ratio: float | None = None
    latency: bool = False
    max_latency_ms: float | None = None
    baseline_latency_ms: float = math.nan

    @property
    def names(self) -> tuple[str, ...]:
        """Metric columns behind the objectives (three, or four with latency)."""
        return ("clean_accuracy", self.robustness, "compression_ratio") + (("latency_ms",) if self.latency else ())

    @property
    def n_constraints(self) -> int:
        """Number of inequality constraints."""
        return (int(self.max_accuracy_drop is not None) + int(self.min_compression_ratio is not None)
                + int(self.max_latency_ms is not None))

    @property
    def measures_latency(self) -> bool:
        """Whether plans' latency is measured (an objective or a constraint)."""
        return self.latency or self.max_latency_ms is not None

    def _latency_term(self, metrics: dict[str, Any]) -> float:
        speedup = float(metrics.get("latency_speedup", math.nan))
        if math.isfinite(speedup) and speedup > 0:  # paired with the reference in the same rounds
            return -math.log2(speedup)
        base = self.baseline_latency_ms if math.isfinite(self.baseline_latency_ms) else 1.0
        return math.log2(max(float(metrics["latency_ms"]), 1e-9) / base)

    def objective_vector(self, metrics: dict[str, Any] | None) -> np.ndarray:
        """``F`` (minimised) of one candidate's metrics; None (a failure) gives the worst values."""
        if metrics is None or not all(math.isfinite(metrics.get(n, math.nan)) for n in self.names):
            return self.worst()
        rob = metrics[self.robustness]
        rob_term = -rob / 100 if self.robustness == "mean_corruption_accuracy" else rob / 100
        F = [-metrics["clean_accuracy"] / 100, rob_term, -math.log2(max(metrics["compression_ratio"], 1e-9))]
        if self.latency:
            F.append(self._latency_term(metrics))
        return np.array(F)

    def worst(self) -> np.ndarray:
        """The objective vector of a failed candidate."""
        F = [0.0, 0.0 if self.robustness == "mean_corruption_accuracy" else 10.0, 0.0]
        return np.array(F + [10.0] if self.latency else F)

    def reference_point(self) -> np.ndarray:
        """Hypervolume reference point: accuracy 0, robustness 0 (or 2x the baseline's corruption error), ratio 1
        and, with latency, twice the reference's latency."""
        F = [0.0, 0.0 if self.robustness == "mean_corruption_accuracy" else 2.0, 0.0]
        return np.array(F + [1.0] if self.latency else F)

    def constraint_vector(self, metrics: dict[str, Any] | None) -> np.ndarray:
        """``G`` (<= 0 is feasible) of one candidate's metrics; a failure violates every constraint."""
        out = []
        if self.max_accuracy_drop is not None:
            if metrics is None:
                out.append(1e3)
            else:  # against the reference on the same images when the metrics carry it
                drop = -metrics["clean_delta"] if "clean_delta" in metrics else \
                    self.baseline_accuracy - metrics["clean_accuracy"]
                out.append(drop - self.max_accuracy_drop)
        if self.min_compression_ratio is not None:
            out.append(1e3 if metrics is None else
                       (self.min_compression_ratio - metrics["compression_ratio"]) / self.min_compression_ratio)
        if self.max_latency_ms is not None:
            latency = math.nan if metrics is None else float(metrics.get("latency_ms", math.nan))
            out.append(1e3 if not math.isfinite(latency) else (latency - self.max_latency_ms) / self.max_latency_ms)
        return np.array(out, dtype=float)
