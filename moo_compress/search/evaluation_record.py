"""The typed record of one plan's evaluation: what a worker measured, read from its JSON form once.

Workers write a plan's evaluation to the cache as JSON (:func:`~moo_compress.search.candidate.evaluate_plan`);
the main process reads it into an :class:`EvaluationRecord` where it arrives
(:class:`~moo_compress.search.problem.PlanEvaluator`), and every stage after (screening's racing, the
evaluations table, selection, the report, held-out robustness, re-evaluation) reads attributes, not keys.
Window records of one plan merge into one (:meth:`EvaluationRecord.merge`) and a merged record can be cut
to its first images (:meth:`EvaluationRecord.prefix`); :meth:`EvaluationRecord.outcomes` gives the
per-image outcomes the paired claims are made from.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from moo_compress import __version__
from moo_compress.compress import CompressionPlan
from moo_compress.errors import ConfigError
from moo_compress.evaluation.stats import pack_bits, unpack_bits
from moo_compress.runfolder import LATENCY_COLUMNS
from moo_compress.search.claims import Outcomes

__all__ = ["EvaluationRecord", "record_outcomes"]

#: Fields of the typed record that the JSON form keeps flat (the latency columns) or loose (the rest).
_NESTED = ("latency", "provenance")


@dataclass(frozen=True)
class EvaluationRecord:
    """One plan's evaluation on one set of images (a window, or windows merged).

    Attributes:
        plan_key: The plan's key.
        label: Its short label.
        plan: The plan as a dict (:meth:`~moo_compress.compress.CompressionPlan.to_dict`).
        status: ``ok`` or ``failed``.
        error: Why it failed (None when ok).
        clean_accuracy: Fraction right on the clean images (NaN when failed).
        corruption_accuracy: ``"name/severity"`` -> fraction right.
        clean_correct: Per-image outcomes on the clean images, packed
            (:func:`~moo_compress.evaluation.stats.pack_bits`); None for a record without them.
        corruption_correct: ``"name/severity"`` -> packed per-image outcomes.
        n_clean: Clean images.
        n_corrupted: Corrupted images over every cell.
        compression_ratio: fp32 bits / compressed bits under the storage model.
        compressed_bits: Compressed size in bits.
        dense_bits: fp32 size in bits.
        seconds: Wall time (summed over windows).
        compress_seconds: Time spent compressing.
        weights_fingerprint: Fingerprint of the compressed weights (identical models share it).
        duplicate_of: Key of an earlier plan that produced the same model (its numbers were taken over).
        duplicate_label: That plan's label.
        window: ``(start, stop)`` of the image order this record covers (one window).
        images_per_cell: Images per (corruption, severity) (merged records).
        windows: How many windows were merged.
        rung: The racing rung reached (screening).
        stopped: Why racing stopped the plan early, if it did.
        cache_hit: Read from the cache rather than computed.
        latency: The measured latency columns (:data:`~moo_compress.runfolder.LATENCY_COLUMNS`), if any.
        provenance: Everything else the worker wrote (``plan_resolved``, ``precision``, ``context_key``,
            ``moo_compress_version``, a failure's ``traceback``, ...).
    """

    plan_key: str
    label: str
    plan: dict[str, Any]
    status: str = "ok"
    error: str | None = None
    clean_accuracy: float = math.nan
    corruption_accuracy: dict[str, float] = field(default_factory=dict)
    clean_correct: str | None = None
    corruption_correct: dict[str, str] = field(default_factory=dict)
    n_clean: int = 0
    n_corrupted: int = 0
    compression_ratio: float = math.nan
    compressed_bits: int | None = None
    dense_bits: int | None = None
    seconds: float = 0.0
    compress_seconds: float = 0.0
    weights_fingerprint: str | None = None
    duplicate_of: str | None = None
    duplicate_label: str | None = None
    window: tuple[int, int] | None = None
    images_per_cell: int | None = None
    windows: int = 1
    rung: int | None = None
    stopped: str | None = None
    cache_hit: bool = False
    latency: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)

    # -- JSON form ---------------------------------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EvaluationRecord:
        """The record of a worker's (or the cache's) JSON dict; unknown keys go to ``provenance``."""
        names = {f.name for f in dataclasses.fields(cls)} - set(_NESTED)
        values = {k: v for k, v in data.items() if k in names and v is not None}
        window = values.get("window")
        if window is not None:
            values["window"] = (int(window[0]), int(window[1]))
        for key in ("seconds", "compress_seconds", "clean_accuracy", "compression_ratio"):
            if key in values:
                values[key] = float(values[key])
        values["cache_hit"] = bool(values.get("cache_hit", False))
        latency = {k: data[k] for k in LATENCY_COLUMNS if k in data}
        provenance = {k: v for k, v in data.items() if k not in names and k not in latency}
        return cls(**values, latency=latency, provenance=provenance)

    @classmethod
    def coerce(cls, record: EvaluationRecord | Mapping[str, Any]) -> EvaluationRecord:
        """``record`` as a typed record (a dict is read with :meth:`from_dict`)."""
        return record if isinstance(record, EvaluationRecord) else cls.from_dict(record)

    @classmethod
    def failed(cls, plan: CompressionPlan, error: str) -> EvaluationRecord:
        """The record of a plan whose evaluation failed with ``error``."""
        return cls(plan_key=plan.key(), label=plan.label(), plan=plan.to_dict(), status="failed", error=error,
                   provenance={"moo_compress_version": __version__})

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (the keys :meth:`from_dict` reads; latency and provenance flattened back)."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in _NESTED}
        out["window"] = list(self.window) if self.window is not None else None
        return {**self.provenance, **out, **self.latency}

    def replace(self, **changes: Any) -> EvaluationRecord:
        """A copy with ``changes``."""
        return dataclasses.replace(self, **changes)

    # -- reading -----------------------------------------------------------------------------------------------------
    @property
    def ok(self) -> bool:
        """Whether the evaluation succeeded."""
        return self.status == "ok"

    def outcomes(self, corruptions: Sequence[str], severities: Sequence[int]) -> Outcomes:
        """The per-image :class:`~moo_compress.search.claims.Outcomes` of an ok record.

        Raises:
            ConfigError: if the record has no per-image outcomes (written by an older version).
        """
        if self.clean_correct is None or not self.corruption_correct:
            raise ConfigError(f"the record of {self.label} has no per-image outcomes; evaluate it again "
                              "with this version (an older cache entry)")
        n = self.n_corrupted // max(1, len(self.corruption_correct))
        cells = np.stack([np.stack([unpack_bits(self.corruption_correct[f"{c}/{s}"], n) for s in severities], 1)
                          for c in corruptions], 1)
        return Outcomes(unpack_bits(self.clean_correct, self.n_clean), cells, tuple(corruptions), tuple(severities))

    def _cells(self) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        keys = list(self.corruption_correct)
        per_cell = self.n_corrupted // max(1, len(keys))
        return (unpack_bits(self.clean_correct or "", self.n_clean),
                {k: unpack_bits(self.corruption_correct[k], per_cell) for k in keys})

    def _with_outcomes(self, clean: np.ndarray, cells: dict[str, np.ndarray], **changes: Any) -> EvaluationRecord:
        first = next(iter(cells.values()), np.zeros(0, bool))
        return self.replace(clean_accuracy=float(clean.mean()),
                            corruption_accuracy={k: float(v.mean()) for k, v in cells.items()},
                            clean_correct=pack_bits(clean),
                            corruption_correct={k: pack_bits(v) for k, v in cells.items()},
                            n_clean=int(clean.size), n_corrupted=int(sum(v.size for v in cells.values())),
                            images_per_cell=int(first.size), **changes)

    # -- windows -----------------------------------------------------------------------------------------------------
    @classmethod
    def merge(cls, chunks: Sequence[EvaluationRecord]) -> EvaluationRecord:
        """One record of a plan from its records on consecutive windows (per-image outcomes appended).

        Accuracies are recomputed from the joined outcomes; times add up; a failure in any window makes
        the merged record failed. ``images_per_cell`` is the number of images per (corruption, severity).
        """
        if not chunks:
            raise ValueError("EvaluationRecord.merge needs at least one record")
        first = chunks[0]
        merged = first.replace(windows=len(chunks), cache_hit=all(c.cache_hit for c in chunks),
                               seconds=round(sum(c.seconds for c in chunks), 3))
        failed = next((c for c in chunks if not c.ok), None)
        if failed is not None:
            trace = {"traceback": failed.provenance["traceback"]} if "traceback" in failed.provenance else {}
            return merged.replace(status=failed.status, error=failed.error,
                                  provenance={**merged.provenance, **trace})
        if len(chunks) == 1:
            return merged.replace(images_per_cell=first.n_corrupted // max(1, len(first.corruption_correct)))
        parts = [c._cells() for c in chunks]
        clean = np.concatenate([p[0] for p in parts])
        cells = {k: np.concatenate([p[1][k] for p in parts]) for k in first.corruption_correct}
        return merged._with_outcomes(clean, cells, compress_seconds=round(sum(c.compress_seconds for c in chunks), 3))

    def prefix(self, images: int) -> EvaluationRecord:
        """This merged record cut to its first ``images`` images per cell (clean and corrupted alike)."""
        if int(self.images_per_cell or 0) == images:
            return self
        clean, cells = self._cells()
        held = next(iter(cells.values())).size if cells else 0
        if held < images:
            raise ValueError(f"the record holds {held} images per cell, fewer than {images}")
        multiple = self.n_clean // int(self.images_per_cell or held)  # clean images per corrupted image
        return self._with_outcomes(clean[:images * multiple], {k: v[:images] for k, v in cells.items()})


def record_outcomes(record: EvaluationRecord | Mapping[str, Any], corruptions: Sequence[str],
                    severities: Sequence[int]) -> Outcomes:
    """The per-image outcomes of an ok record (a typed record or its JSON dict)."""
    return EvaluationRecord.coerce(record).outcomes(corruptions, severities)
