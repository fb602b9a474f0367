"""Screening: the algorithm proposes plans, the racer measures them on the search split, cheaply.

:func:`screen` measures the reference first (the uncompressed model under the space's recovery), then
runs the algorithm generation by generation until its generations or the budget are spent. Plans are
measured by the :class:`~moo_compress.search.racing.Racer` (nested rungs, cached) and, where the
algorithm allows it, chosen by the surrogate from a larger batch of offspring. The pymoo problem holds
the encoding and objectives only; evaluation happens here, in the ask/tell loop.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from moo_compress.compress import RecoveryConfig, compress
from moo_compress.compress.size import size_report
from moo_compress.data import dataset_classes, dataset_labels
from moo_compress.errors import ConfigError, MooCompressError
from moo_compress.search import outputs
from moo_compress.search.algorithms import ArchiveDuplicateElimination, GridSearch, surrogate_can_steer
from moo_compress.search.candidate import EvaluationSpec, discard_models, load_resources, split_order, split_pool
from moo_compress.search.context import UNTIL_BUDGET, SearchContext
from moo_compress.search.evaluation_record import EvaluationRecord
from moo_compress.search.evaluations import EvaluationLog, evaluation_frame, objective_matrix
from moo_compress.search.latency import LatencyMeter
from moo_compress.search.objectives import Objectives, record_metrics
from moo_compress.search.pareto import hypervolume, pareto_mask
from moo_compress.search.problem import CompressionProblem, PlanEvaluator
from moo_compress.search.progress import Progress, format_duration
from moo_compress.search.racing import Racer
from moo_compress.search.reference import ReferenceCheck
from moo_compress.search.surrogate import Surrogate, choose_offspring

__all__ = ["Screening", "Schedule", "screen", "start_screening", "run_generations", "setup_algorithm",
           "evaluate_genotypes"]

logger = logging.getLogger("moo_compress.search")


@dataclass
class Schedule:
    """The work left after a stage, as (evaluations, images each) pairs, for the ETA."""

    ctx: SearchContext
    racer: Racer
    cells: int
    select_images: int
    report_images: int

    def later(self, front: int, gens_left: int) -> list[tuple[int, int]]:
        """Screening's remaining generations, selection and report, for a front of ``front`` plans."""
        racer, ladder = self.racer, self.ctx.ladder
        per_plan = racer.spent / max(1, len(racer.entries)) if racer.entries else ladder[0] * (self.cells + 1)
        screening = (gens_left * self.ctx.pop_size, int(per_plan))
        if self.ctx.budget_images is not None:
            screening = (max(0, self.ctx.budget_images - racer.spent) // max(1, int(per_plan)), int(per_plan))
        return [screening, (front + 3 if self.select_images else 0, self.select_images // 2),
                (front + 2 if self.report_images else 0, self.report_images)]


@dataclass
class Screening:
    """The screening stage's state and result.

    Attributes:
        spec: The first rung's spec.
        evaluator: Cached evaluation of plans on the screening spec (its spec replaced per stage).
        racer: The racer, holding every plan's records and the reference's.
        objectives: The run's objectives (the reference's accuracy and latency filled in).
        problem: The pymoo problem (names and bounds only).
        meter: The latency meter of a deployment search (None otherwise), in this process.
        baseline: The reference's record on the first rung.
        base_metrics: Its metrics.
        notes: Notes for ``knees.json`` (e.g. an objective replaced, the reference check's finding).
        check: The reference check (None when the space has no recovery).
        schedule: The work left, for the ETA.
        log: Every evaluated plan's record.
        frame: The evaluations table (``evaluations.csv``), filled by :func:`screen`.
        history: One row per generation.
    """

    spec: EvaluationSpec
    evaluator: PlanEvaluator
    racer: Racer
    objectives: Objectives
    problem: CompressionProblem
    meter: LatencyMeter | None
    baseline: EvaluationRecord
    base_metrics: dict[str, Any]
    notes: list[str]
    schedule: Schedule
    check: ReferenceCheck | None = None
    log: EvaluationLog = field(default_factory=EvaluationLog)
    frame: pd.DataFrame = field(default_factory=pd.DataFrame)
    history: list[dict[str, Any]] = field(default_factory=list)

    def refresh(self) -> pd.DataFrame:
        """Rebuilds :attr:`frame` from the records so far."""
        self.frame = evaluation_frame(self.log, self.objectives, self.racer.metrics)
        return self.frame

    def order_labels(self) -> np.ndarray:
        """Labels of the search split's images in the fixed order the rungs take them."""
        spec = self.spec
        labels = dataset_labels(spec.dataset, "test", data_root=spec.data_root, cache_dir=spec.cache_dir)
        pool = split_pool(spec)
        return labels[pool[split_order(spec, labels, pool)]]


def _images(n: int | str | None, classes: int, split_size: int) -> int:
    return split_size if n in ("all", None) else max(1, int(n) // classes) * classes


def _max_ratio(spec: EvaluationSpec, ctx: SearchContext) -> float:
    plan = dataclasses.replace(ctx.encoding.decode(ctx.encoding.strongest()), recovery=RecoveryConfig())
    return size_report(compress(load_resources(spec).pretrained.model, plan)).compression_ratio


def _measure_reference(ctx: SearchContext, racer: Racer, objectives: Objectives,
                       spec: EvaluationSpec) -> tuple[EvaluationRecord, Objectives, list[str]]:
    """The reference's record on the first rung, the objectives it completes, and notes."""
    try:
        baseline = racer.reference_at(ctx.ladder[0])
    except ConfigError as exc:
        raise MooCompressError(str(exc)) from None
    robustness, notes = ctx.space.robustness, []
    if robustness == "relative_mce" and not math.isfinite(
            record_metrics(baseline, baseline, spec.corruptions, spec.severities).get("relative_mce", math.nan)):
        notes.append("relative mCE is undefined at the screening fidelity (the reference's error does not rise "
                     "above its clean error under some corruption), so this run optimises mCE instead")
        logger.warning(notes[-1])
        robustness = "mce"
    objectives = dataclasses.replace(objectives, robustness=robustness,
                                     baseline_accuracy=100 * baseline.clean_accuracy,
                                     baseline_latency_ms=float(baseline.latency.get("latency_ms", math.nan)))
    return baseline, objectives, notes


def _log_reference(ctx: SearchContext, metrics: dict[str, Any], baseline: EvaluationRecord,
                   meter: LatencyMeter | None) -> None:
    recovery = ", ".join(f"{k}={v}" for k, v in ctx.space.recovery.to_dict().items()) or "none"
    logger.info(f"reference (uncompressed model after the candidates' recovery: {recovery}): clean "
                f"{metrics['clean_accuracy']:.2f}%, mean corruption accuracy "
                f"{metrics['mean_corruption_accuracy']:.2f}% "
                f"on the first {ctx.ladder[0]} search images ({ctx.settings.execution.precision}); space "
                f"'{ctx.space.name}': {len(ctx.encoding.variables)} genes, {ctx.encoding.grid_size():,} plans")
    if meter is not None:
        latency = baseline.latency
        logger.info(f"reference latency: {latency['latency_ms']:.3f} ms at batch 1 (interquartile range "
                    f"{latency['latency_low_ms']:.3f}-{latency['latency_high_ms']:.3f} ms over "
                    f"{meter.settings.rounds} runs), {latency['latency_batch_ms']} ms at batch "
                    f"{meter.settings.batch_size}; {meter.runtime} on {meter.hardware}")


def start_screening(ctx: SearchContext, progress: Progress, check: ReferenceCheck | None = None) -> Screening:
    """Sets up the evaluator, the racer and the objectives, and measures the reference on the first rung
    (``check``: the reference check that chose ``ctx.reference_plan``, noted in the run's outputs).

    Raises:
        ConfigError: when the space's ratio constraint cannot be met.
        MooCompressError: when the reference fails.
    """
    space, spec = ctx.space, ctx.screening_spec
    n_corr = len(spec.corruptions) * len(spec.severities)
    evaluator = PlanEvaluator(spec, spec.cache_dir or "", ctx.executor, on_record=progress.on_record)

    def evaluate_window(plans: list[Any], start: int, stop: int) -> list[EvaluationRecord]:
        return dataclasses.replace(evaluator, spec=ctx.window_spec(start, stop))(plans)

    objectives = Objectives(robustness=space.robustness, corruptions=spec.corruptions, severities=spec.severities,
                            baseline_accuracy=math.nan, max_accuracy_drop=space.max_accuracy_drop,
                            min_compression_ratio=space.min_compression_ratio,
                            latency=space.latency is not None and space.latency.objective,
                            max_latency_ms=space.max_latency_ms)
    meter = None if space.latency is None else LatencyMeter.for_spec(space.latency, spec, ctx.reference_plan,
                                                                      logger.info)
    time_budget = ctx.settings.algorithm.time_budget
    racer = Racer(ctx.ladder, evaluate_window, ctx.reference_plan, objectives, racing=ctx.fidelity.mode == "racing",
                  confidence=ctx.fidelity.confidence, budget_images=ctx.budget_images, cells=n_corr,
                  deadline=ctx.started + time_budget if time_budget else None, clean_multiple=ctx.clean_multiple,
                  release=lambda plans: discard_models(spec, [p.key() for p in plans]), latency=meter)
    progress.start("reference", len(ctx.ladder), [])
    baseline, objectives, notes = _measure_reference(ctx, racer, objectives, spec)
    racer.objectives = objectives
    if space.min_compression_ratio is not None:
        reachable = _max_ratio(spec, ctx)
        if reachable < space.min_compression_ratio:
            raise ConfigError(
                f"{space.source}: constraints.min_compression_ratio={space.min_compression_ratio:g} cannot be met: "
                f"the strongest plan of the space reaches {reachable:.2f}x on {ctx.settings.target.model}; lower "
                "the constraint or add stronger choices")
    base_metrics = racer.metrics(baseline)
    _log_reference(ctx, base_metrics, baseline, meter)
    fidelity = ctx.settings.fidelity
    select_images = ctx.select_images * (n_corr + 1) if fidelity.select_images != 0 else 0
    report_images = (ctx.split_size + _images(fidelity.final_images, dataset_classes(spec.dataset, spec.data_root),
                                              ctx.split_size) * n_corr if fidelity.final_images else 0)
    return Screening(spec=spec, evaluator=evaluator, racer=racer, objectives=objectives,
                     problem=CompressionProblem(ctx.encoding, objectives), meter=meter, baseline=baseline,
                     base_metrics=base_metrics, notes=([check.note()] if check is not None else []) + notes,
                     check=check,
                     schedule=Schedule(ctx, racer, n_corr, select_images, report_images))


class _Generations:
    """The per-generation bookkeeping of :func:`screen`: progress before, history and log lines after."""

    def __init__(self, ctx: SearchContext, screening: Screening, progress: Progress, total: int) -> None:
        self.ctx, self.screening, self.progress, self.total = ctx, screening, progress, total
        self.reference = screening.objectives.reference_point()  # fixed for the run: hypervolumes compare

    def before(self, gen: int, size: int) -> None:
        s = self.screening
        front = int(s.refresh()["pareto"].sum()) if len(s.log) else self.ctx.pop_size // 2
        shown = "?" if self.total >= UNTIL_BUDGET else self.total
        self.progress.start(f"gen {gen}/{shown}", size * len(self.ctx.ladder),
                            s.schedule.later(front, self.total - gen), bound=len(self.ctx.ladder) > 1)

    def _promotion_note(self) -> str:
        promotion = self.ctx.promotion
        if not promotion.enabled:
            return ""
        return f"; not the promotion of up to {promotion.plans} plan(s) to {promotion.recovery.level}"  # type: ignore[union-attr]

    def after(self, gen: int, X: np.ndarray, records: list[EvaluationRecord]) -> None:
        s, racer, history = self.screening, self.screening.racer, self.screening.history
        new = hits = 0
        for x, record in zip(X, records, strict=True):
            if s.log.add(record, gen, self.ctx.encoding.values(x)):
                new += 1
                hits += record.cache_hit
        frame = s.refresh()
        F = objective_matrix(frame, s.objectives)
        hv = hypervolume(F[pareto_mask(F, frame["feasible"].to_numpy())], self.reference) if len(frame) else 0.0
        spent_before = history[-1]["images"] if history else 0
        history.append({"generation": gen, "evaluations": len(s.log), "new": new, "cache_hits": hits,
                        "failed": int((frame["status"] != "ok").sum()), "hypervolume": hv,
                        "front_size": int(frame["pareto"].sum()), "images": racer.spent,
                        "images_new": racer.spent - spent_before, "seconds": round(self.progress.elapsed(), 1)})
        failed = [r for r in records if not r.ok]
        if failed and not history[:-1]:
            logger.warning(f"{len(failed)} candidate(s) failed, e.g. {failed[0].label}: {failed[0].error} "
                           "(failures are recorded in evaluations.csv and the search goes on)")
        remaining = self.progress.remaining(s.schedule.later(history[-1]["front_size"], self.total - gen))
        eta = "?" if math.isnan(remaining) else format_duration(remaining)
        shown = "?" if self.total >= UNTIL_BUDGET else self.total
        budget = self.ctx.budget_images
        logger.info(f"gen {gen}/{shown} | evals {len(s.log)} (+{new}, {hits} cached) | "
                    f"failed {history[-1]['failed']} | front {history[-1]['front_size']} | HV {hv:.4f} | "
                    f"images {racer.spent:,}{'' if budget is None else f'/{budget:,}'} | "
                    f"{format_duration(self.progress.elapsed())} elapsed, ETA {eta} (selection and report included"
                    f"{self._promotion_note()})")
        outputs.write_progress(self.ctx.out_dir, frame, pd.DataFrame(history))


def evaluate_genotypes(racer: Racer, objectives: Objectives, encoding: Any,
                       X: np.ndarray) -> tuple[list[EvaluationRecord], np.ndarray, np.ndarray | None]:
    """Records (by ``racer``), objective vectors and constraint vectors (None without constraints) of ``X``."""
    records = racer([encoding.decode(np.asarray(x).round().astype(int)) for x in X])
    metrics = [racer.metrics(r) for r in records]
    F = np.array([objectives.objective_vector(m) for m in metrics])
    G = np.array([objectives.constraint_vector(m) for m in metrics]) if objectives.n_constraints else None
    return records, F, G


def setup_algorithm(algorithm: Any, problem: CompressionProblem, *, generations: int, seed: int,
                    max_evals: int | None = None) -> int:
    """Sets the algorithm up for the problem; returns the generations it will run (for display)."""
    if isinstance(algorithm, GridSearch):
        algorithm.max_evals = max_evals
        algorithm.setup(problem)
        return algorithm.generations
    from pymoo.termination.max_gen import MaximumGenerationTermination

    algorithm.setup(problem, termination=MaximumGenerationTermination(generations), seed=seed, verbose=False)
    return generations


def _steers(ctx: SearchContext, algorithm: Any) -> Surrogate:
    """The surrogate in force: the space's, or off (said so) where it cannot choose the algorithm's offspring."""
    surrogate = ctx.space.surrogate or Surrogate(candidates=1)
    if isinstance(algorithm, GridSearch) or not surrogate.enabled:
        return Surrogate(candidates=1)
    if not surrogate_can_steer(algorithm):
        logger.info(f"note: the surrogate is off: it cannot choose {type(algorithm).__name__}'s offspring from a "
                    "larger batch (it steers NSGA-II and NSGA-III)")
        return Surrogate(candidates=1)
    return surrogate


def screen(ctx: SearchContext, algorithm: Any, screening: Screening, progress: Progress) -> Screening:
    """Runs ``algorithm`` (a pymoo algorithm or :class:`~moo_compress.search.algorithms.GridSearch`) over the
    problem until its generations, ``max_evals`` or the budget are spent; fills ``screening``'s log,
    frame and history (and ``evaluations.csv``/``history.csv`` after every generation)."""
    algo = ctx.settings.algorithm
    total = setup_algorithm(algorithm, screening.problem, generations=ctx.generations, seed=algo.seed,
                            max_evals=algo.max_evals)
    generations = _Generations(ctx, screening, progress, total)
    run_generations(algorithm, screening.problem, screening.racer, screening.objectives, ctx.encoding,
                    pop_size=ctx.pop_size, surrogate=_steers(ctx, algorithm), max_evals=algo.max_evals,
                    before=generations.before, after=generations.after)
    screening.refresh()
    return screening


def run_generations(algorithm: Any, problem: CompressionProblem, racer: Racer, objectives: Objectives,
                    encoding: Any, *, pop_size: int, surrogate: Surrogate, max_evals: int | None = None,
                    before: Callable[[int, int], None] | None = None,
                    after: Callable[[int, np.ndarray, list[EvaluationRecord]], None] | None = None) -> None:
    """The ask/tell loop of a set-up algorithm: each generation's genotypes are measured by ``racer`` and told
    back, until the algorithm ends, ``max_evals`` is reached or the racer's budget is spent.

    Args:
        algorithm: A pymoo algorithm (set up, see :func:`setup_algorithm`) or a
            :class:`~moo_compress.search.algorithms.GridSearch`.
        problem: The problem it was set up with.
        racer: Measures plans (and keeps the budget).
        objectives: How records become objective and constraint vectors.
        encoding: Decodes genotypes to plans.
        pop_size: Plans per generation (the surrogate chooses this many from its larger batch).
        surrogate: The surrogate in force (``candidates=1``: off).
        max_evals: Stop after this many evaluations.
        before: Called with (generation, plans) before a generation is measured.
        after: Called with (generation, genotypes, records) after it.
    """
    from pymoo.core.evaluator import Evaluator
    from pymoo.problems.static import StaticProblem

    grid = isinstance(algorithm, GridSearch)
    archive = getattr(algorithm, "eliminate_duplicates", None)
    seen_X: list[np.ndarray] = []
    seen_F: list[np.ndarray] = []
    seen_G: list[np.ndarray] = []
    gen = 0
    while algorithm.has_next() and not racer.exhausted:
        if gen > 0 and surrogate.enabled:  # the initial population is the algorithm's own sampling
            algorithm.n_offsprings = pop_size * surrogate.candidates
        pop = algorithm.ask()
        if pop is None or len(pop) == 0:  # every offspring was evaluated before: the space is exhausted
            break
        X = pop.get("X").round().astype(int)
        if gen > 0 and surrogate.enabled and len(X) > pop_size:
            chosen = choose_offspring(np.array(seen_X), np.array(seen_F),
                                      np.array(seen_G) if problem.n_ieq_constr else None, X, pop_size, surrogate,
                                      problem.xu - problem.xl)
            pop, X = pop[chosen], X[chosen]
        affordable = None if grid else racer.affordable()
        if affordable is not None and len(X) > affordable:  # the budget's last plans: the first proposed
            pop, X = pop[:affordable], X[:affordable]
        if before is not None:
            before(gen + 1, len(X))
        records, F, G = evaluate_genotypes(racer, objectives, encoding, X)
        if not grid:
            values = {"F": F} if G is None else {"F": F, "G": G}
            (algorithm.evaluator or Evaluator()).eval(StaticProblem(problem, **values), pop)
            algorithm.tell(infills=pop)
        if isinstance(archive, ArchiveDuplicateElimination):
            archive.seen.update(map(tuple, X))
        for i, record in enumerate(records):
            if record.ok:
                seen_X.append(X[i])
                seen_F.append(F[i])
                seen_G.append(G[i] if G is not None else np.zeros(0))
        gen += 1
        if after is not None:
            after(gen, X, records)
        if not grid and max_evals is not None and algorithm.evaluator.n_eval >= max_evals:
            break
