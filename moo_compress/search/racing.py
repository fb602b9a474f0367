"""Racing over nested fidelity rungs: spend test images where the front is decided.

Every candidate sees the search-split images in one fixed, class-interleaved order, and a *rung* is a
prefix of that order (e.g. 10, 20, 40 images per (corruption, severity), and as many clean images).
A candidate starts on the first rung. After each rung it is compared, on the images both have seen,
with every plan on the current front (point estimates at each plan's highest rung); it is **stopped**
when some front member *confidently dominates* it and **promoted** to the next rung otherwise, until
the last rung. Promotion evaluates only the images the next rung adds (the window ``[a, b)`` of the
order) and appends their per-image outcomes to the earlier ones, so it never repeats work.

Confident dominance of a candidate ``c`` by a front member ``f``: ``f`` compresses at least as much
(exact), and the one-sided lower confidence bounds of the paired differences ``f - c`` in clean
accuracy *and* in robustness (the space's metric, per image) are both above zero. A candidate whose
clean-accuracy drop against the reference is confidently beyond the space's ``max_accuracy_drop``
is stopped as infeasible. Each test is one-sided at ``alpha = (1 - confidence) / looks``, where
``looks`` is the number of rungs after which a candidate can be stopped: a Bonferroni correction over
the repeated looks at one candidate, so that a candidate that ``f`` does not truly dominate is
stopped by ``f`` with probability at most ``1 - confidence`` over the whole race. Requiring both
objectives at once (an intersection-union test) needs no further correction. Comparisons with
different front members are not corrected (a plan near several front members may be stopped a
little more often); ``benchmarks/bench_fidelity.py`` measures what this costs in recall.

With latency measured (:mod:`~moo_compress.search.latency`), every new plan's latency is measured
first, in the main process while no worker evaluates; a plan that cannot be deployed is failed without
evaluation, and a front member stops a candidate only if it is also at least as fast.

A *fixed* fidelity is a ladder of one rung: every candidate is measured on the same images, as before
racing. NSGA-II ranks every candidate by its numbers at its highest rung, against the reference
measured on the same images.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from moo_compress.compress import CompressionPlan
from moo_compress.errors import ConfigError
from moo_compress.evaluation.stats import paired_difference_interval
from moo_compress.runfolder import LATENCY_COLUMNS
from moo_compress.search.claims import Outcomes
from moo_compress.search.evaluation_record import EvaluationRecord
from moo_compress.search.objectives import Objectives, record_metrics
from moo_compress.search.pareto import pareto_mask

__all__ = ["Racer", "merge_records", "robustness_scores", "rung_windows"]

def rung_windows(ladder: Sequence[int]) -> list[tuple[int, int]]:
    """The windows ``[a, b)`` of the order that each rung adds: ``[(0, r0), (r0, r1), ...]``."""
    bounds = [0, *ladder]
    return [(int(a), int(b)) for a, b in zip(bounds, bounds[1:], strict=False)]


def merge_records(chunks: Sequence[EvaluationRecord | dict[str, Any]]) -> EvaluationRecord:
    """One record of a plan from its records on consecutive windows (:meth:`EvaluationRecord.merge`)."""
    return EvaluationRecord.merge([EvaluationRecord.coerce(c) for c in chunks])


def robustness_scores(out: Outcomes, reference: Outcomes, robustness: str) -> np.ndarray:
    """Per-image robustness, higher is better, whose mean over images is the metric (or minus it).

    ``mean_corruption_accuracy``: the image's accuracy over the cells. ``mce``: minus
    ``(100 / C) sum_c errors(i, c) / Rbar_c`` with ``Rbar_c`` the reference's mean errors per image under
    corruption ``c``, so the mean over images is minus mCE. ``relative_mce``: the same with errors minus
    ``S`` times the image's clean error. Differences of two plans' scores on the same images are paired.
    """
    n = out.cells.shape[0]
    if robustness == "mean_corruption_accuracy":
        return out.cells.reshape(n, -1).mean(axis=1)
    errors = (~out.cells).sum(axis=2).astype(float)
    ref_errors = (~reference.cells[:n]).sum(axis=2).astype(float)
    if robustness == "relative_mce":
        severities = out.cells.shape[2]
        errors = errors - severities * (~out.clean[:n]).astype(float)[:, None]
        ref_errors = ref_errors - severities * (~reference.clean[:n]).astype(float)[:, None]
    elif robustness != "mce":
        raise ConfigError(f"unknown robustness metric {robustness!r}")
    denominators = ref_errors.mean(axis=0)
    if (denominators <= 0).any():  # undefined: fall back to the accuracy scale
        return out.cells.reshape(n, -1).mean(axis=1)
    return -(100.0 / errors.shape[1]) * (errors / denominators).sum(axis=1)


@dataclass
class _Entry:
    plan: CompressionPlan
    chunks: list[EvaluationRecord] = field(default_factory=list)
    images: int = 0
    record: EvaluationRecord | None = None
    stopped: str | None = None
    latency: dict[str, Any] = field(default_factory=dict)
    _outcomes: Outcomes | None = None
    _metrics: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        return self.record is not None and self.record.ok


class Racer:
    """Evaluates plans by racing them over nested rungs; keeps every plan's best estimate.

    Calling the racer with plans (a NSGA-II generation) returns their records at the highest rung each
    reached (merged over windows, with ``rung``, ``images_per_cell`` and ``stopped``); plans seen
    before are returned as they are. The reference is measured on every window first.

    Args:
        ladder: Cumulative images per (corruption, severity) of the rungs.
        evaluate_window: ``(plans, start, stop) -> records`` on the window ``[start, stop)`` of the
            fixed order (cached, on any executor).
        reference_plan: The reference (uncompressed model after the space's recovery).
        objectives: How metrics become objectives and constraints.
        racing: Stop confidently dominated candidates (False: every candidate climbs every rung).
        confidence: See :class:`Fidelity`.
        budget_images: Let the search stop once this many images (clean plus corrupted, cache hits
            included, so the count is the same in every execution mode) are spent: :attr:`exhausted`
            turns True. A race already started finishes, so that no plan enters the front on a low rung.
        cells: Number of (corruption, severity) cells.
        deadline: ``time.perf_counter()`` value after which the budget counts as spent (not deterministic).
        clean_multiple: Clean images per corrupted image of a window (what a window costs).
        release: Called with the plans whose race ended (stopped, failed, or on the top rung and off the
            front), e.g. to discard the compressed models kept between windows.
        latency: ``plans -> {plan key: latency fields}`` (a :class:`~moo_compress.search.latency.LatencyMeter`),
            called for new plans before they are evaluated; the fields join their records.
    """

    def __init__(self, ladder: Sequence[int], evaluate_window: Callable[[list[CompressionPlan], int, int],
                                                                         Sequence[EvaluationRecord | dict[str, Any]]],
                 reference_plan: CompressionPlan, objectives: Objectives, *, racing: bool = True,
                 confidence: float = 0.95, budget_images: int | None = None, cells: int = 1,
                 deadline: float | None = None, clean_multiple: int = 1,
                 release: Callable[[list[CompressionPlan]], None] | None = None,
                 latency: Callable[[list[CompressionPlan]], dict[str, dict[str, Any]]] | None = None) -> None:
        self.ladder = tuple(int(r) for r in ladder)
        self.evaluate_window = evaluate_window
        self.reference_plan = reference_plan
        self.objectives = objectives
        self.racing = racing and len(self.ladder) > 1
        self.confidence = float(confidence)
        self.budget_images = budget_images
        self.cells = int(cells)
        self.deadline = deadline
        self.clean_multiple = int(clean_multiple)
        self.release = release
        self.latency = latency
        self.spent = 0
        self.entries: dict[str, _Entry] = {}
        self.reference: dict[int, EvaluationRecord] = {}
        self._reference_outcomes: dict[int, Outcomes] = {}
        self._reference = _Entry(reference_plan)

    # -- bookkeeping -------------------------------------------------------------------------------------------------
    @property
    def exhausted(self) -> bool:
        """Whether the image budget (or the wall-time deadline) is spent."""
        if self.deadline is not None and time.perf_counter() > self.deadline:
            return True
        return self.budget_images is not None and self.spent >= self.budget_images

    def affordable(self) -> int | None:
        """How many new plans the rest of the image budget pays for at the top rung (None: no budget).

        At least one while any budget is left, so the last generation is cut to what the budget
        allows instead of overshooting it by a whole generation.
        """
        if self.budget_images is None:
            return None
        left = self.budget_images - self.spent
        if left <= 0:
            return 0
        per_plan = self.ladder[-1] * (self.cells + self.clean_multiple)
        return max(1, -(-left // per_plan))

    @property
    def alpha(self) -> float:
        """One-sided level of each test (Bonferroni over the looks at one candidate)."""
        return (1.0 - self.confidence) / max(1, len(self.ladder) - 1)

    def _advance(self, entries: list[_Entry], start: int, stop: int, *, charge: bool = True) -> None:
        """Evaluates the window ``[start, stop)`` for ``entries`` (all measured up to ``start``) and merges."""
        records = self.evaluate_window([e.plan for e in entries], start, stop)
        for entry, record in zip(entries, records, strict=True):
            entry.chunks.append(EvaluationRecord.coerce(record))
            entry.images = stop
            latency = {k: v for k, v in entry.latency.items() if k in LATENCY_COLUMNS}
            entry.record = EvaluationRecord.merge(entry.chunks).replace(rung=len(entry.chunks) - 1,
                                                                        stopped=entry.stopped, latency=latency)
            entry._outcomes = None
            entry._metrics = None
        if charge:
            self.spent += len(entries) * (stop - start) * (self.cells + self.clean_multiple)

    def _measure_latency(self, entries: list[_Entry]) -> list[_Entry]:
        """Adds latency to entries that lack it; returns those that can be evaluated (the others are failed)."""
        if self.latency is None:
            return entries
        todo = [e for e in entries if not e.latency]
        if todo:
            found = self.latency([e.plan for e in todo])
            for e in todo:
                e.latency = found[e.plan.key()]
                if "latency_error" in e.latency:
                    error = f"latency measurement failed: {e.latency['latency_error']}"
                    e.record = EvaluationRecord.failed(e.plan, error)
        return [e for e in entries if "latency_error" not in e.latency]

    def reference_at(self, images: int) -> EvaluationRecord:
        """The reference's record on the first ``images`` images per cell (measured on demand)."""
        if images not in self.reference:
            self._measure_latency([self._reference])
            self._climb([self._reference], images, charge=False)
            record = self._reference.record
            if record is None or not record.ok:
                error = None if record is None else record.error
                raise ConfigError(f"the reference (uncompressed model after the space's recovery) failed: {error}")
            self.reference[images] = record.prefix(images)
        return self.reference[images]

    def metrics(self, record: EvaluationRecord) -> dict[str, Any] | None:
        """Metrics of a record against the reference on the same images (None for a failed one)."""
        if not record.ok:
            return None
        return record_metrics(record, self.reference_at(int(record.images_per_cell or 0)),
                              self.objectives.corruptions, self.objectives.severities)

    def _climb(self, entries: list[_Entry], top: int, *, charge: bool = True) -> None:
        """Brings every entry to at least ``top`` images per cell along the ladder's windows (no racing)."""
        for start, stop in rung_windows([r for r in self.ladder if r < top] + [top]):
            todo = [e for e in entries if e.images == start and (e.record is None or e.ok)]
            if todo:
                self._advance(todo, start, stop, charge=charge)

    # -- racing ------------------------------------------------------------------------------------------------------
    def __call__(self, plans: Sequence[CompressionPlan]) -> list[EvaluationRecord]:
        """Records of ``plans`` at their highest rung, racing the new ones (see the module docstring)."""
        new: list[_Entry] = []
        for plan in plans:
            if plan.key() not in self.entries:
                self.entries[plan.key()] = _Entry(plan)
                new.append(self.entries[plan.key()])
        live = self._measure_latency(new)
        for k, (start, stop) in enumerate(rung_windows(self.ladder)):
            if not live:
                break
            self.reference_at(stop)
            self._advance(live, start, stop)
            if k == len(self.ladder) - 1 or not self.racing:
                break
            front = self._front()
            going = [e for e in live if e.ok and not self._stop(e, front)]
            self._release([e for e in live if e not in going])
            live = going
        front = self._front() if live else []
        self._release([e for e in live if e not in front])  # front members' models serve selection and report
        return [self.entries[plan.key()].record for plan in plans]  # type: ignore[misc]

    def _release(self, entries: list[_Entry]) -> None:
        if self.release is not None and entries:
            self.release([e.plan for e in entries])

    def extend(self, plans: Sequence[CompressionPlan], images: int) -> list[EvaluationRecord]:
        """Records of ``plans`` on the first ``images`` images per cell (only missing windows evaluated)."""
        entries = []
        for plan in plans:
            entry = self.entries.setdefault(plan.key(), _Entry(plan))
            entries.append(entry)
        self.reference_at(images)
        self._climb(self._measure_latency(entries), images)
        return [e.record.prefix(images) if e.ok else e.record for e in entries]  # type: ignore[union-attr,misc]

    def _outcomes(self, entry: _Entry) -> Outcomes:
        if entry._outcomes is None:
            entry._outcomes = entry.record.outcomes(self.objectives.corruptions,  # type: ignore[union-attr]
                                                    self.objectives.severities)
        return entry._outcomes

    def _reference_outcomes_at(self, images: int) -> Outcomes:
        if images not in self._reference_outcomes:
            self._reference_outcomes[images] = self.reference_at(images).outcomes(self.objectives.corruptions,
                                                                                  self.objectives.severities)
        return self._reference_outcomes[images]

    def _entry_metrics(self, entry: _Entry) -> dict[str, Any] | None:
        if entry._metrics is None:
            entry._metrics = self.metrics(entry.record)  # type: ignore[arg-type]
        return entry._metrics

    def _front(self) -> list[_Entry]:
        entries = [e for e in self.entries.values() if e.ok]
        if not entries:
            return []
        metrics = [self._entry_metrics(e) for e in entries]
        F = np.array([self.objectives.objective_vector(m) for m in metrics])
        feasible = np.array([bool(np.all(self.objectives.constraint_vector(m) <= 0)) for m in metrics])
        seen: set[str] = set()
        first = []
        for e in entries:
            fp = e.record.weights_fingerprint if e.record is not None else None
            first.append(fp is None or fp not in seen)
            if fp:
                seen.add(fp)
        mask = pareto_mask(F, feasible & np.array(first))
        return [e for e, m in zip(entries, mask, strict=True) if m]

    def _stop(self, entry: _Entry, front: list[_Entry]) -> bool:
        """Whether the candidate is confidently infeasible or dominated by a front member (records why)."""
        level = 1.0 - 2.0 * self.alpha  # two-sided level whose lower bound is the one-sided bound at alpha
        out = self._outcomes(entry)
        n = out.cells.shape[0]
        drop = self.objectives.max_accuracy_drop
        if drop is not None:
            ref = self._reference_outcomes_at(n)
            delta = paired_difference_interval(out.clean, ref.clean, level=level)
            if 100 * delta.high < -drop:
                entry.stopped = f"infeasible after {n} images: clean drop confidently beyond {drop:g} points"
        if entry.stopped is None:
            ratio = float(entry.record.compression_ratio)  # type: ignore[union-attr]
            speed = float(entry.latency.get("latency_speedup", 0.0)) if self.objectives.latency else 0.0
            for other in front:
                if other is entry or float(other.record.compression_ratio) < ratio:  # type: ignore[union-attr]
                    continue
                if self.objectives.latency and float(other.latency.get("latency_speedup", 0.0)) < speed:
                    continue  # a slower plan does not dominate
                if self._dominates(other, entry, level):
                    entry.stopped = f"dominated by {other.record.label} after {n} images"  # type: ignore[union-attr]
                    break
        if entry.stopped is not None:
            entry.record = entry.record.replace(stopped=entry.stopped)  # type: ignore[union-attr]
        return entry.stopped is not None

    def _dominates(self, f: _Entry, c: _Entry, level: float) -> bool:
        """Whether ``f`` is confidently better than ``c`` in clean accuracy and robustness (common images)."""
        a, b = self._outcomes(f), self._outcomes(c)
        m = min(a.clean.size, b.clean.size)
        n = min(a.cells.shape[0], b.cells.shape[0])
        clean = paired_difference_interval(a.clean[:m], b.clean[:m], level=level)
        if not clean.low > 0:
            return False
        ref = self._reference_outcomes_at(n)
        robustness = self.objectives.robustness
        fa = robustness_scores(_head(a, n), ref, robustness)
        fb = robustness_scores(_head(b, n), ref, robustness)
        return bool(paired_difference_interval(fa, fb, level=level).low > 0)


def _head(out: Outcomes, n: int) -> Outcomes:
    return Outcomes(out.clean, out.cells[:n], out.corruptions, out.severities)
