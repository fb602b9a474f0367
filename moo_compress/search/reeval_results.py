"""What a re-evaluation returns: one typed result per evaluated model, and the images they were measured on.

:class:`Reevaluation` is what :func:`~moo_compress.search.reevaluate.reevaluate_run` returns;
:meth:`Reevaluation.to_frame` gives the same numbers as a table (one row per model) for a notebook.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from moo_compress.compress import CompressionPlan
from moo_compress.deploy.export import ExportResult
from moo_compress.evaluation.stats import Interval
from moo_compress.runfolder import METRIC_COLUMNS
from moo_compress.search.claims import LEVEL

__all__ = ["INTERVALS", "Latency", "LatencyInfo", "ModelResult", "OnnxCheck", "PairedClaims", "Reevaluation"]

#: The paired intervals of a plan against its reference; in a table, columns ``<name>``, ``<name>_low``,
#: ``<name>_high``.
INTERVALS = ("clean_delta", "mca_delta", "mce", "relative_mce", "worst_class_delta", "worst_corruption_delta")


@dataclass(frozen=True)
class PairedClaims:
    """A plan against its reference on the same images (:func:`~moo_compress.search.claims.plan_claims`).

    Attributes:
        clean_delta: Clean accuracy, plan minus reference (points).
        mca_delta: Mean corruption accuracy, plan minus reference (points).
        mce: mCE against the reference (100 = as robust).
        relative_mce: Relative mCE against the reference.
        worst_class: The class that lost the most clean accuracy.
        worst_class_delta: Its accuracy change (points).
        worst_corruption: The corruption that lost the most accuracy.
        worst_corruption_delta: Its accuracy change (points).
        changed_predictions: Clean images whose prediction changed.
        n_clean: Clean images compared.
        n_corrupted: Images per (corruption, severity) compared.
    """

    clean_delta: Interval
    mca_delta: Interval
    mce: Interval
    relative_mce: Interval
    worst_class: int
    worst_class_delta: Interval
    worst_corruption: str
    worst_corruption_delta: Interval
    changed_predictions: int
    n_clean: int
    n_corrupted: int

    @classmethod
    def from_claims(cls, claims: Mapping[str, Any]) -> PairedClaims:
        """The claims returned by :func:`~moo_compress.search.claims.plan_claims`."""
        return cls(**{name: claims[name] for name in INTERVALS}, worst_class=int(claims["worst_class"]),
                   worst_corruption=str(claims["worst_corruption"]), changed_predictions=int(claims["changed"]),
                   n_clean=int(claims["n_clean"]), n_corrupted=int(claims["n_corrupted"]))

    def columns(self) -> dict[str, Any]:
        """The claims as table columns: every interval as three numbers, then the counts."""
        out: dict[str, Any] = {}
        for name in INTERVALS:
            interval = getattr(self, name)
            out.update({name: interval.estimate, f"{name}_low": interval.low, f"{name}_high": interval.high})
        out.update(worst_class=self.worst_class, worst_corruption=self.worst_corruption,
                   changed_predictions=self.changed_predictions, n_clean=self.n_clean, n_corrupted=self.n_corrupted)
        return out


@dataclass(frozen=True)
class OnnxCheck:
    """A plan written as an ONNX file, and its clean top-1 in ONNX Runtime (percent)."""

    path: str
    kind: str
    bytes: int
    clean_accuracy: float


@dataclass(frozen=True)
class Latency:
    """A model's deployed latency on this machine (milliseconds), and a plan's speed-up over its reference.

    The fields are the latency columns of a run (:data:`~moo_compress.runfolder.LATENCY_COLUMNS`) without
    their ``latency_`` prefix; ``error`` says why a plan could not be timed.
    """

    ms: float | None = None
    low_ms: float | None = None
    high_ms: float | None = None
    speedup: float | None = None
    speedup_low: float | None = None
    speedup_high: float | None = None
    batch_ms: float | None = None
    batch_speedup: float | None = None
    structure: str | None = None
    error: str | None = None

    @classmethod
    def from_fields(cls, values: Mapping[str, Any]) -> Latency:
        """From the ``latency_*`` fields a :class:`~moo_compress.search.latency.LatencyMeter` returns."""
        return cls(**{name: values.get(f"latency_{name}") for name in cls.__dataclass_fields__})

    def columns(self) -> dict[str, Any]:
        """The ``latency_*`` table columns."""
        return {f"latency_{name}": getattr(self, name) for name in self.__dataclass_fields__}


@dataclass(frozen=True)
class LatencyInfo:
    """How latency was measured: runtime, hardware, timed rounds, the larger batch and threads."""

    runtime_name: str
    hardware: str
    rounds: int
    batch_size: int
    threads: int


@dataclass(frozen=True)
class ModelResult:
    """One evaluated model: a reference, the original model or a plan.

    Attributes:
        name: ``reference`` (or ``reference (<recovery>)`` with several), ``original``, or the plan's name
            (its recommendation method, ``row 3``, ``plan 0``...).
        role: ``reference``, ``original`` or ``plan``.
        plan: The compression plan evaluated.
        label: The plan's short label.
        status: ``ok`` or ``failed``.
        error: Why it failed.
        cached: Whether the evaluation came from the cache.
        seconds: How long the evaluation took.
        compared_to: The name of the reference its numbers are compared with (None for a reference).
        metrics: Accuracies in percent, ``mce`` and ``relative_mce`` against the reference, per corruption
            family (``family/<name>``) and corruption (``acc/<name>``)
            (:func:`~moo_compress.search.objectives.record_metrics`).
        claims: Paired intervals against the reference (None for a reference, or without per-image outcomes).
        export: The packed file written, when exporting.
        onnx: The ONNX file written and its accuracy, when exporting to ONNX.
        latency: Its latency on this machine, when timed.
    """

    name: str
    role: str
    plan: CompressionPlan
    label: str
    status: str
    error: str | None = None
    cached: bool = False
    seconds: float | None = None
    compared_to: str | None = None
    metrics: Mapping[str, float] = field(default_factory=dict)
    claims: PairedClaims | None = None
    export: ExportResult | None = None
    onnx: OnnxCheck | None = None
    latency: Latency | None = None

    @property
    def ok(self) -> bool:
        """Whether the evaluation succeeded."""
        return self.status == "ok"

    @property
    def plan_key(self) -> str:
        """The plan's cache key."""
        return self.plan.key()

    def metric(self, name: str) -> float:
        """One of :attr:`metrics` (NaN when absent), e.g. ``clean_accuracy`` or ``acc/fog``."""
        return float(self.metrics.get(name, math.nan))

    def row(self) -> dict[str, Any]:
        """The model as one table row (see :meth:`Reevaluation.to_frame`)."""
        out: dict[str, Any] = {"name": self.name, "role": self.role, "label": self.label, "plan_key": self.plan_key,
                               "status": self.status, "error": self.error, "cached": self.cached,
                               "seconds": self.seconds, "compared_to": self.compared_to, **self.metrics}
        if self.claims is not None:
            out.update(self.claims.columns())
        if self.export is not None:
            out.update(export=str(self.export.path), export_bytes=self.export.bytes,
                       export_gzip_bytes=self.export.gzip_bytes)
        if self.onnx is not None:
            out.update(onnx=self.onnx.path, onnx_kind=self.onnx.kind, onnx_bytes=self.onnx.bytes,
                       onnx_clean_accuracy=self.onnx.clean_accuracy)
        if self.latency is not None:
            out.update(self.latency.columns())
        return out


@dataclass(frozen=True)
class Reevaluation:
    """The models of a re-evaluation, the reference(s) first, then ``original`` (left out when it is the
    reference: plans without recovery), then the plans, and the images they were all evaluated on.

    Attributes:
        models: One result per evaluated model.
        arch: The model's architecture.
        dataset: The dataset.
        split: ``report``, ``search`` or ``all``.
        split_seed: The seed of the search/report split.
        precision: ``fp32`` or ``bf16``.
        n_clean: Images for clean accuracy.
        n_corrupted: Images per (corruption, severity).
        pairs: (corruption, severity) pairs.
        level: Confidence level of the paired intervals.
        warning: Why the numbers are optimistic (selection bias), or None.
        notes: Notes on the evaluation (a capped image count, a reference that is the original model...).
        references: Reference name -> its recovery, in words.
        dense_bytes: Bytes of the fp32 ``state_dict``, when exporting packed files.
        latency: How latency was measured, when timed.
    """

    models: tuple[ModelResult, ...]
    arch: str
    dataset: str
    split: str
    split_seed: int
    precision: str
    n_clean: int = 0
    n_corrupted: int = 0
    pairs: int = 0
    level: float = LEVEL
    warning: str | None = None
    notes: tuple[str, ...] = ()
    references: Mapping[str, str] = field(default_factory=dict)
    dense_bytes: int | None = None
    latency: LatencyInfo | None = None

    def __getitem__(self, name: str) -> ModelResult:
        """The model called ``name``.

        Raises:
            KeyError: naming the models there are.
        """
        for model in self.models:
            if model.name == name:
                return model
        raise KeyError(f"no model {name!r}; there are {', '.join(m.name for m in self.models)}")

    @property
    def fidelity(self) -> str:
        """The images used, in words."""
        where = ("the whole test set" if self.split == "all"
                 else f"the {self.split} split (split seed {self.split_seed})")
        if self.split == "report" and self.warning is None:
            where += ", images the search never used to choose the plans"
        return (f"{self.arch} on {self.dataset}, {where}: clean accuracy on {self.n_clean:,} images (every image of "
                f"{'the test set' if self.split == 'all' else 'the split'}), robustness on {self.n_corrupted:,} "
                f"images per (corruption, severity) x {self.pairs} pairs, {self.precision}")

    def to_frame(self) -> pd.DataFrame:
        """One row per model: ``name``, ``role``, ``label``, ``plan_key``, ``status``, ``error``, ``cached``,
        ``seconds``, ``compared_to``, the metrics, the paired claims (every interval as ``<name>``,
        ``<name>_low``, ``<name>_high``; ``worst_class``, ``worst_corruption``, ``changed_predictions``,
        ``n_clean``, ``n_corrupted``) and, when made, ``export*``, ``onnx*`` and ``latency_*`` columns.
        ``attrs`` hold ``fidelity``, ``split``, ``split_seed``, ``n_clean``, ``n_corrupted``, ``pairs``,
        ``level``, ``warning``, ``notes``, ``references`` and, when made, ``dense_bytes`` and ``latency``."""
        frame = pd.DataFrame([model.row() for model in self.models])
        for column in (*METRIC_COLUMNS, *(f"{n}{s}" for n in INTERVALS for s in ("", "_low", "_high"))):
            if column not in frame:
                frame[column] = float("nan")
        frame.attrs.update(fidelity=self.fidelity, split=self.split, split_seed=self.split_seed, n_clean=self.n_clean,
                           n_corrupted=self.n_corrupted, pairs=self.pairs, level=self.level, warning=self.warning,
                           notes=list(self.notes), references=dict(self.references))
        if self.dense_bytes is not None:
            frame.attrs["dense_bytes"] = self.dense_bytes
        if self.latency is not None:
            frame.attrs["latency"] = dataclasses.asdict(self.latency)
        return frame
