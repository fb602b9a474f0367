"""``run_search(settings)``: space -> problem -> NSGA-II -> final re-evaluation -> knees -> outputs.

The run is resumable by construction: every evaluation is cached the moment it is known, NSGA-II is
seeded, and cached evaluations return identical numbers, so re-running the same command replays the
finished part from the cache and continues where an interrupted run stopped.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from moo_compress import paths
from moo_compress.compress import CompressionPlan, RecoveryConfig, compress
from moo_compress.compress.size import size_report
from moo_compress.data import dataset_info
from moo_compress.data.corruptions import resolve_corruptions
from moo_compress.errors import ConfigError, MooCompressError
from moo_compress.models import checkpoint_sha256, model_defaults, resolve_weights
from moo_compress.search import outputs
from moo_compress.search.candidate import EvaluationSpec, load_resources
from moo_compress.search.executors import ExecutorConfig, close_executors, default_workers
from moo_compress.search.knee import (
    closest_to_ideal,
    high_tradeoff_points,
    most_robust_with_ratio,
    nbi_knee,
    smallest_within_accuracy_drop,
)
from moo_compress.search.objectives import Objectives, record_metrics
from moo_compress.search.problem import CompressionProblem, PlanEvaluator
from moo_compress.search.settings import SearchSettings
from moo_compress.search.space import Encoding, SearchSpace, default_space, load_space

__all__ = ["SearchResult", "run_search", "hypervolume", "pareto_mask", "build_spec", "space_spec", "needs_calibration"]


@dataclass
class SearchResult:
    """What a search produced (also written to ``out_dir``).

    Attributes:
        out_dir: The run folder.
        evaluations: One row per distinct candidate evaluated at screening fidelity.
        pareto: The Pareto set with screening and final metrics.
        recommendations: The knee points and user picks.
        history: One row per generation (evaluations, cache hits, hypervolume, time).
        baseline: Metrics of the uncompressed model (screening and final).
        seconds: Wall time.
    """

    out_dir: Path
    evaluations: pd.DataFrame
    pareto: pd.DataFrame
    recommendations: list[dict[str, Any]]
    history: pd.DataFrame
    baseline: dict[str, Any]
    seconds: float


def hypervolume(F: np.ndarray, reference: np.ndarray) -> float:
    """Hypervolume dominated by the rows of ``F`` (minimised) up to ``reference``; 0 for an empty set."""
    from pymoo.indicators.hv import HV

    F = np.asarray(F, float)
    if F.size == 0:
        return 0.0
    inside = F[np.all(F < reference, axis=1)]
    return float(HV(ref_point=reference)(inside)) if len(inside) else 0.0


def pareto_mask(F: np.ndarray, feasible: np.ndarray | None = None) -> np.ndarray:
    """Boolean mask of the non-dominated (and feasible) rows of ``F``."""
    from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting

    F = np.asarray(F, float)
    mask = np.zeros(len(F), dtype=bool)
    candidates = np.flatnonzero(feasible if feasible is not None else np.ones(len(F), bool))
    if len(candidates):
        front = NonDominatedSorting().do(F[candidates], only_non_dominated_front=True)
        mask[candidates[front]] = True
    return mask


def _corruption_names(space: SearchSpace) -> tuple[str, ...]:
    return tuple(resolve_corruptions(space.corruptions if isinstance(space.corruptions, str) else list(space.corruptions)))


def needs_calibration(space: SearchSpace) -> bool:
    """Whether the space's plans read calibration images (recovery or activation quantization)."""
    return space.recovery.enabled or "activation_bits" in space.quantize or any(
        g.kind == "activation_bits" and any(c is not None for c in g.choices) for g in space.genes)


def build_spec(settings: SearchSettings, *, corruptions: tuple[str, ...], severities: tuple[int, ...],
               n_images: int | str | None, calibration_images: int) -> EvaluationSpec:
    """The evaluation spec of a run at a fidelity of ``n_images`` per (corruption, severity) ("all" = every image)."""
    info = dataset_info(settings.dataset)
    weights = resolve_weights(settings.arch, settings.dataset, weights=settings.weights,
                              weights_dir=settings.weights_dir)
    n_per_class = None if n_images in ("all", None) else max(1, int(n_images) // info.num_classes)
    return EvaluationSpec(
        arch=settings.arch,
        dataset=settings.dataset,
        weights_path=str(Path(weights).resolve()),
        weights_sha256=checkpoint_sha256(weights),
        data_root=str(Path(settings.data_root).expanduser().resolve()) if settings.data_root else None,
        corruptions=tuple(corruptions),
        severities=tuple(severities),
        n_per_class=n_per_class,
        seed=settings.subset_seed,
        release_dir=settings.release_dir,
        calibration_images=calibration_images,
        precision=settings.precision,
        device=settings.device,
        batch_size=settings.batch_size,
        cache_dir=str(paths.cache_dir(settings.cache_dir)),
    )


def space_spec(settings: SearchSettings, space: SearchSpace, n_images: int | str | None) -> EvaluationSpec:
    """The evaluation spec of a search over ``space`` at a fidelity of ``n_images`` (see :func:`build_spec`)."""
    calibration = 0
    if needs_calibration(space):
        calibration = settings.calibration_images or space.recovery.bn_images or 512
        if calibration < space.recovery.bn_images:
            raise ConfigError(f"the space re-estimates batch norm on {space.recovery.bn_images} images but "
                              f"--calibration-images is {calibration}; raise it or omit it")
    return build_spec(settings, corruptions=_corruption_names(space), severities=tuple(space.severities),
                      n_images=n_images, calibration_images=calibration)


def _max_ratio(spec: EvaluationSpec, encoding: Encoding) -> float:
    plan = dataclasses.replace(encoding.decode(encoding.strongest()), recovery=RecoveryConfig())
    return size_report(compress(load_resources(spec).pretrained.model, plan)).compression_ratio


def _fmt_time(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"


class _Log:
    """Collects evaluation records in the order they were first seen."""

    def __init__(self) -> None:
        self.records: dict[str, dict[str, Any]] = {}
        self.generation: dict[str, int] = {}
        self.genes: dict[str, dict[str, Any]] = {}

    def add(self, record: dict[str, Any], generation: int, genes: dict[str, Any]) -> bool:
        key = record["plan_key"]
        if key in self.records:
            return False
        self.records[key] = record
        self.generation[key] = generation
        self.genes[key] = genes
        return True


def run_search(settings: SearchSettings, *, log: Callable[[str], None] = print) -> SearchResult:
    """Runs a compression search and writes its outputs; see the module docstring.

    Raises:
        MooCompressError: for bad settings, a malformed space, impossible constraints, missing data.
    """
    started = time.perf_counter()
    settings = settings.resolved()
    defaults = model_defaults(settings.arch)
    space = load_space(settings.space or default_space(defaults.family))
    pop_size = settings.pop_size or space.pop_size
    generations = settings.generations or space.generations
    encoding = space.encoding(defaults.layer_groups)
    if not encoding.variables:
        raise ConfigError(f"{space.source}: every gene has a single choice; nothing to search")
    out_dir = Path(settings.out or Path("outputs") / f"{settings.arch}-{space.name}-seed{settings.seed}")
    out_dir.mkdir(parents=True, exist_ok=True)
    executor = ExecutorConfig(workers=settings.workers or default_workers(settings.device),
                              scheduler=settings.scheduler)

    log(f"preparing {settings.arch} on {settings.dataset}: screening with {settings.eval_images} images per "
        f"(corruption, severity) ...")
    spec = space_spec(settings, space, settings.eval_images).resolved()
    evaluator = PlanEvaluator(spec, spec.cache_dir or "", executor)
    baseline = evaluator([CompressionPlan()])[0]
    if baseline["status"] != "ok":
        raise MooCompressError(f"the uncompressed baseline failed to evaluate: {baseline['error']}")
    objectives = Objectives(
        robustness=space.robustness,
        corruptions=spec.corruptions,
        severities=spec.severities,
        baseline_accuracy=100 * baseline["clean_accuracy"],
        max_accuracy_drop=space.max_accuracy_drop,
        min_compression_ratio=space.min_compression_ratio,
    )
    if space.min_compression_ratio is not None:
        reachable = _max_ratio(spec, encoding)
        if reachable < space.min_compression_ratio:
            raise ConfigError(
                f"{space.source}: constraints.min_compression_ratio={space.min_compression_ratio:g} cannot be met: "
                f"the strongest plan of the space reaches {reachable:.2f}x on {settings.arch}; lower the "
                "constraint or add stronger choices")
    problem = CompressionProblem(encoding, objectives, evaluator, baseline)
    base_metrics = problem.metrics(baseline)
    log(f"baseline: clean {base_metrics['clean_accuracy']:.2f}%, mean corruption accuracy "
        f"{base_metrics['mean_corruption_accuracy']:.2f}% on {spec.n_per_class or 'all'} images/class "
        f"({settings.precision}); space '{space.name}': {len(encoding.variables)} genes, "
        f"{encoding.grid_size():,} plans")

    run_log = _Log()
    history: list[dict[str, Any]] = []
    reference = objectives.reference_point()
    deadline = started + settings.time_budget if settings.time_budget else None

    def record_generation(gen: int, X: np.ndarray, pop_records: list[dict[str, Any]], t_gen: float,
                          total_gens: int) -> None:
        new = hits = 0
        for x, record in zip(X, pop_records):
            if run_log.add(record, gen, encoding.values(x)):
                new += 1
                hits += bool(record.get("cache_hit"))
        frame = _frame(run_log, problem)
        F = np.vstack(frame["_F"].to_numpy()) if len(frame) else np.zeros((0, 3))
        hv = hypervolume(F[pareto_mask(F, frame["feasible"].to_numpy())], reference) if len(frame) else 0.0
        elapsed = time.perf_counter() - started
        history.append({"generation": gen, "evaluations": len(run_log.records), "new": new, "cache_hits": hits,
                        "failed": int((frame["status"] != "ok").sum()), "hypervolume": hv,
                        "front_size": int(frame["pareto"].sum()), "seconds": round(elapsed, 1)})
        remaining = (total_gens - gen) * t_gen if total_gens > gen else 0.0
        failed = [r for r in pop_records if r.get("status") != "ok"]
        if failed and not history[:-1]:
            log(f"warning: {len(failed)} candidate(s) failed, e.g. {failed[0]['label']}: {failed[0]['error']} "
                "(failures are recorded in evaluations.csv and the search goes on)")
        log(f"gen {gen}/{total_gens} | evals {len(run_log.records)} (+{new}, {hits} cached) | "
            f"failed {history[-1]['failed']} | front {history[-1]['front_size']} | HV {hv:.4f} | "
            f"{_fmt_time(elapsed)} elapsed, ETA {_fmt_time(remaining)}")
        outputs.write_progress(out_dir, frame, pd.DataFrame(history))

    try:
        if space.algorithm == "grid":
            _run_grid(problem, encoding, pop_size, settings, deadline, record_generation)
        else:
            _run_nsga2(problem, encoding, pop_size, generations, settings, deadline, record_generation)
        frame = _frame(run_log, problem)
        final = _final_evaluation(settings, space, frame, problem, executor, log)
    finally:
        close_executors()
    recommendations = _recommend(final["pareto"], final["baseline"], settings)
    result = SearchResult(out_dir, frame.drop(columns=["_F"]), final["pareto"], recommendations,
                          pd.DataFrame(history), final["baseline"], time.perf_counter() - started)
    outputs.write_all(result, settings=settings, space=space, spec=spec, final_spec=final["spec"],
                      encoding=encoding, objectives=objectives)
    log(f"done in {_fmt_time(result.seconds)}: {len(frame)} plans evaluated, {len(result.pareto)} on the front; "
        f"results in {out_dir}/ (summary.md)")
    return result


def _initial_population(encoding: Encoding, pop_size: int, seed: int) -> np.ndarray:
    """Random genotypes plus the uncompressed one (all zeros) and the strongest one."""
    rng = np.random.default_rng(seed)
    upper = encoding.upper_bounds
    X = rng.integers(0, upper + 1, size=(pop_size, len(upper)))
    X[0] = 0
    if pop_size > 1:
        X[1] = upper
    return X


def _archive_elimination() -> Any:
    """pymoo duplicate elimination that also rejects genotypes evaluated in any earlier generation.

    pymoo compares offspring only with the current population; in a discrete space that re-proposes
    plans already evaluated (free from the cache, but a wasted slot of the evaluation budget).
    """
    from pymoo.core.duplicate import DefaultDuplicateElimination

    class ArchiveDuplicateElimination(DefaultDuplicateElimination):
        def __init__(self) -> None:
            super().__init__()
            self.seen: set[tuple[int, ...]] = set()

        def _do(self, pop: Any, other: Any, is_duplicate: np.ndarray) -> np.ndarray:
            is_duplicate = super()._do(pop, other, is_duplicate)
            for i, x in enumerate(np.round(self.func(pop)).astype(int)):
                is_duplicate[i] |= tuple(x) in self.seen
            return is_duplicate

    return ArchiveDuplicateElimination()


def _run_nsga2(problem: CompressionProblem, encoding: Encoding, pop_size: int, generations: int,
               settings: SearchSettings, deadline: float | None,
               record_generation: Callable[..., None]) -> None:
    from pymoo.algorithms.moo.nsga2 import NSGA2
    from pymoo.operators.crossover.sbx import SBX
    from pymoo.operators.mutation.pm import PM
    from pymoo.operators.repair.rounding import RoundingRepair
    from pymoo.termination.max_gen import MaximumGenerationTermination

    archive = _archive_elimination()
    # Integer genes as pymoo recommends for discrete variables: real-coded SBX and polynomial mutation
    # with a small distribution index (wide steps: neighbouring integers are different plans), rounded.
    algorithm = NSGA2(
        pop_size=pop_size,
        sampling=_initial_population(encoding, pop_size, settings.seed),
        crossover=SBX(prob=0.9, eta=3.0, vtype=float, repair=RoundingRepair()),
        mutation=PM(eta=3.0, vtype=float, repair=RoundingRepair()),
        eliminate_duplicates=archive,
    )
    algorithm.setup(problem, termination=MaximumGenerationTermination(generations), seed=settings.seed,
                    verbose=False)
    gen = 0
    while algorithm.has_next():
        t0 = time.perf_counter()
        pop = algorithm.ask()
        X = pop.get("X").round().astype(int)
        algorithm.evaluator.eval(problem, pop)
        algorithm.tell(infills=pop)
        archive.seen.update(map(tuple, X))
        gen += 1
        record_generation(gen, X, list(pop.get("record")), time.perf_counter() - t0, generations)
        if settings.max_evals is not None and algorithm.evaluator.n_eval >= settings.max_evals:
            break
        if deadline is not None and time.perf_counter() > deadline:
            break


def _run_grid(problem: CompressionProblem, encoding: Encoding, batch: int, settings: SearchSettings,
              deadline: float | None, record_generation: Callable[..., None]) -> None:
    X = np.array(list(encoding.grid()))
    if settings.max_evals is not None:
        X = X[: settings.max_evals]
    batches = [X[i:i + batch] for i in range(0, len(X), batch)]
    for gen, chunk in enumerate(batches, start=1):
        t0 = time.perf_counter()
        out = problem.evaluate(chunk, return_as_dictionary=True)
        record_generation(gen, chunk, list(out["record"]), time.perf_counter() - t0, len(batches))
        if deadline is not None and time.perf_counter() > deadline:
            break


def _frame(run_log: _Log, problem: CompressionProblem) -> pd.DataFrame:
    """One row per distinct evaluated plan: genes, plan, metrics, objectives, feasibility, Pareto flag."""
    rows = []
    for key, record in run_log.records.items():
        metrics = problem.metrics(record)
        F = problem.objectives.objective_vector(metrics)
        G = problem.objectives.constraint_vector(metrics)
        row = {"plan_key": key, "generation": run_log.generation[key], "label": record["label"],
               **{f"gene/{k}": ("off" if v is None else v) for k, v in run_log.genes[key].items()},
               "status": record["status"], "error": record.get("error"),
               "cache_hit": bool(record.get("cache_hit")), "seconds": record.get("seconds"),
               **(metrics or {}), "feasible": metrics is not None and bool(np.all(G <= 0)),
               "plan": record["plan"], "_F": F}
        rows.append(row)
    frame = pd.DataFrame(rows)
    for column in ("clean_accuracy", "mean_corruption_accuracy", "mce", "relative_mce", "compression_ratio"):
        if column not in frame:  # every candidate so far failed
            frame[column] = np.nan
    frame["duplicate_of"] = _duplicates(frame, run_log)
    if len(frame):
        # a plan that produced the same model as an earlier one is that plan, not another point
        candidates = frame["feasible"].to_numpy() & frame["duplicate_of"].isna().to_numpy()
        frame["pareto"] = pareto_mask(np.vstack(frame["_F"].to_numpy()), candidates)
    else:
        frame["pareto"] = pd.Series(dtype=bool)
    return frame


def _duplicates(frame: pd.DataFrame, run_log: _Log) -> pd.Series:
    """Label of the first plan of the run that produced the same compressed model, else None."""
    first: dict[str, str] = {}
    out = []
    for key in frame["plan_key"] if len(frame) else []:
        fingerprint = run_log.records[key].get("weights_fingerprint")
        if not fingerprint or run_log.records[key].get("status") != "ok":
            out.append(None)
            continue
        out.append(first.get(fingerprint))
        first.setdefault(fingerprint, run_log.records[key]["label"])
    return pd.Series(out, index=frame.index, dtype=object)


def _final_evaluation(settings: SearchSettings, space: SearchSpace, frame: pd.DataFrame,
                      problem: CompressionProblem, executor: ExecutorConfig,
                      log: Callable[[str], None]) -> dict[str, Any]:
    """Re-evaluates the Pareto set (and the baseline) at the final fidelity."""
    # sorted by compression ratio: rows are addressed by number (evaluate --select ROW, summary.md '#')
    front = frame[frame["pareto"]].sort_values(["compression_ratio", "clean_accuracy"]).reset_index(drop=True)
    baseline_screen = problem.metrics(problem.baseline)
    result: dict[str, Any] = {"spec": None, "baseline": {"screening": baseline_screen, "final": None}}
    columns = ["clean_accuracy", "mean_corruption_accuracy", "mce", "relative_mce", "compression_ratio"]
    if settings.final_images == 0 or front.empty:
        for c in columns:
            front[f"final/{c}"] = front[c]
        result["pareto"] = front.drop(columns=["_F"])
        return result
    spec = space_spec(settings, space, settings.final_images).resolved()
    evaluator = PlanEvaluator(spec, spec.cache_dir or "", executor)
    plans = [CompressionPlan()] + [CompressionPlan.from_dict(p) for p in front["plan"]]
    log(f"re-evaluating the {len(front)} plans of the front and the baseline on "
        f"{'all' if spec.n_per_class is None else spec.n_per_class * dataset_info(settings.dataset).num_classes} "
        "images per (corruption, severity) ...")
    records = evaluator(plans)
    base = records[0]
    if base["status"] != "ok":
        raise MooCompressError(f"the baseline failed at the final fidelity: {base['error']}")
    final_metrics = [record_metrics(r, base, spec.corruptions, spec.severities) if r["status"] == "ok" else {}
                     for r in records[1:]]
    for c in columns:
        front[f"final/{c}"] = [m.get(c, math.nan) for m in final_metrics]
    for c in [k for k in (final_metrics[0] if final_metrics else {}) if k.startswith(("acc/", "family/"))]:
        front[f"final/{c}"] = [m.get(c, math.nan) for m in final_metrics]
    result["spec"] = spec
    result["baseline"]["final"] = record_metrics(base, base, spec.corruptions, spec.severities)
    result["pareto"] = front.drop(columns=["_F"]).reset_index(drop=True)
    return result


def _recommend(front: pd.DataFrame, baseline: dict[str, Any], settings: SearchSettings) -> list[dict[str, Any]]:
    """Knee points and user picks on the final-fidelity metrics of the front."""
    if front.empty:
        return []
    robustness = "final/mean_corruption_accuracy"
    acc, rob, ratio = (front[c].to_numpy(float) for c in ("final/clean_accuracy", robustness, "final/compression_ratio"))
    ok = np.isfinite(acc) & np.isfinite(rob) & np.isfinite(ratio)
    base = baseline["final"] or baseline["screening"]
    idx = np.flatnonzero(ok)
    if not len(idx):
        return []
    F = np.column_stack([-acc[idx], -rob[idx], -np.log2(ratio[idx])])
    picks: list[tuple[str, str, int | None, str]] = []
    if len(idx) >= 2:
        picks.append(("nbi_knee", "Knee: farthest from the plane through the extreme plans",
                      int(idx[nbi_knee(F)]), "the best balanced trade-off: moving away from it along the front "
                      "buys little in one objective for a lot in another"))
        picks.append(("closest_to_ideal", "Closest to the ideal point", int(idx[closest_to_ideal(F)]),
                      "nearest to the (unreachable) plan that is best in all three objectives at once"))
        for i in high_tradeoff_points(F):
            picks.append(("high_tradeoff", "High trade-off point", int(idx[i]),
                          "any neighbouring plan gives up much more than it gains"))
    picks.append(("most_robust_min_ratio", f"Most robust with compression ratio >= {settings.pick_min_ratio:g}x",
                  most_robust_with_ratio(rob, np.where(ok, ratio, 0), settings.pick_min_ratio),
                  f"the highest mean corruption accuracy among plans at least {settings.pick_min_ratio:g}x smaller"))
    picks.append(("smallest_within_drop", f"Smallest within {settings.pick_max_drop:g} points of baseline accuracy",
                  smallest_within_accuracy_drop(np.where(ok, acc, -np.inf), ratio, base["clean_accuracy"],
                                                settings.pick_max_drop),
                  f"the highest compression ratio that keeps clean accuracy within {settings.pick_max_drop:g} points"))
    out = []
    for method, title, row, why in picks:
        if row is None:
            out.append({"method": method, "title": title, "row": None, "rationale": "no plan on the front qualifies"})
            continue
        r = front.iloc[row]
        out.append({
            "method": method,
            "title": title,
            "row": int(row),
            "plan_key": r["plan_key"],
            "label": r["label"],
            "plan": r["plan"],
            "clean_accuracy": float(r["final/clean_accuracy"]),
            "mean_corruption_accuracy": float(r[robustness]),
            "mce": float(r["final/mce"]),
            "compression_ratio": float(r["final/compression_ratio"]),
            "rationale": (f"{why}. {r['final/compression_ratio']:.1f}x smaller than the baseline; clean accuracy "
                          f"{r['final/clean_accuracy']:.2f}% ({r['final/clean_accuracy'] - base['clean_accuracy']:+.2f} "
                          f"points); mean corruption accuracy {r[robustness]:.2f}% "
                          f"({r[robustness] - base['mean_corruption_accuracy']:+.2f} points); mCE {r['final/mce']:.1f}."),
        })
    return out
