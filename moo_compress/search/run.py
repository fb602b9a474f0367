"""``run_search(settings)``: space -> problem -> NSGA-II -> final re-evaluation -> knees -> outputs.

The run is resumable by construction: every evaluation is cached the moment it is known, NSGA-II is
seeded, and cached evaluations return identical numbers, so re-running the same command replays the
finished part from the cache and continues where an interrupted run stopped.
"""

from __future__ import annotations

import dataclasses
import functools
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
from moo_compress.compress.calibration import calibration_size
from moo_compress.compress.size import size_report
from moo_compress.data import dataset_classes, dataset_labels
from moo_compress.data.corruptions import resolve_corruptions
from moo_compress.errors import ConfigError, MooCompressError
from moo_compress.models import checkpoint_sha256, materialize_source, model_defaults, resolve_weights
from moo_compress.models.sources import is_source, source_slug
from moo_compress.search import outputs
from moo_compress.search import final
from moo_compress.search.candidate import EvaluationSpec, discard_models, load_resources, split_order, split_pool
from moo_compress.search.claims import LEVEL
from moo_compress.search.executors import ExecutorConfig, close_executors, default_workers
from moo_compress.search.final import pareto_mask
from moo_compress.search.objectives import Objectives, record_metrics
from moo_compress.search.fidelity import Fidelity
from moo_compress.search.latency import LATENCY_FIELDS, LatencyMeter, speedup_verdict
from moo_compress.search.problem import CompressionProblem, PlanEvaluator
from moo_compress.search.racing import Racer
from moo_compress.search.settings import HELD_OUT_IMAGES, SearchSettings
from moo_compress.search.space import Encoding, SearchSpace, default_space, load_space
from moo_compress.search.surrogate import Surrogate, choose_offspring
from moo_compress.evaluation.stats import Interval

__all__ = ["SearchResult", "run_search", "hypervolume", "pareto_mask", "build_spec", "space_spec", "needs_calibration",
           "resolve_fidelity", "UNTIL_BUDGET"]

#: Generations of a search with a budget and no ``--generations``: it stops when the budget is spent.
UNTIL_BUDGET = 10**6


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


def _corruption_names(space: SearchSpace) -> tuple[str, ...]:
    return tuple(resolve_corruptions(space.corruptions if isinstance(space.corruptions, str) else list(space.corruptions)))


def needs_calibration(space: SearchSpace) -> bool:
    """Whether the space's plans read calibration images (recovery or activation quantization)."""
    return space.recovery.enabled or "activation_bits" in space.quantize or any(
        g.kind == "activation_bits" and any(c is not None for c in g.choices) for g in space.genes)


def build_spec(settings: SearchSettings, *, corruptions: tuple[str, ...], severities: tuple[int, ...],
               n_images: int | str | None, calibration_images: int, split: str = "all",
               clean_whole_split: bool = False, corruption_params: str | None = None) -> EvaluationSpec:
    """The evaluation spec of a run at a fidelity of ``n_images`` per (corruption, severity) ("all" = every
    image of ``split``), with the settings' split seed and threads."""
    target, execution = settings.target, settings.execution
    n_classes = dataset_classes(target.dataset, target.data_root)
    if is_source(target.model):
        weights = materialize_source(target.model, num_classes=n_classes, weights=target.weights, mean=target.mean,
                                     std=target.std, input_size=target.input_size, cache_dir=execution.cache_dir)
    else:
        if target.mean or target.std or target.input_size:
            raise ConfigError(f"--mean, --std and --input-size describe a model of your own; {target.model} takes "
                              "them from its checkpoint (drop them, or pass --model path/to/file.py:factory)")
        weights = resolve_weights(target.model, target.dataset, weights=target.weights,
                                  weights_dir=target.weights_dir)
    n_per_class = None if n_images in ("all", None) else max(1, int(n_images) // n_classes)
    return EvaluationSpec(
        arch=target.model,
        dataset=target.dataset,
        weights_path=str(Path(weights).resolve()),
        weights_sha256=checkpoint_sha256(weights),
        data_root=str(Path(target.data_root).expanduser().resolve()) if target.data_root else None,
        corruptions=tuple(corruptions),
        severities=tuple(severities),
        n_per_class=n_per_class,
        seed=settings.fidelity.subset_seed,
        release_dir=target.release_dir,
        calibration_images=calibration_images,
        precision=execution.precision,
        device=execution.device,
        batch_size=execution.batch_size,
        cache_dir=str(paths.cache_dir(execution.cache_dir)),
        split=split,
        split_seed=settings.fidelity.split_seed,
        clean_whole_split=clean_whole_split,
        threads=execution.threads,
        corruption_params=corruption_params,
    )


def space_spec(settings: SearchSettings, space: SearchSpace, n_images: int | str | None, *, split: str = "search",
               clean_whole_split: bool = False) -> EvaluationSpec:
    """The evaluation spec of a search over ``space`` at a fidelity of ``n_images`` (see :func:`build_spec`)."""
    calibration = 0
    if needs_calibration(space):
        calibration = calibration_size(settings.target.calibration_images, space.recovery.bn_images)
        if calibration < space.recovery.bn_images:
            raise ConfigError(f"the space re-estimates batch norm on {space.recovery.bn_images} images but "
                              f"--calibration-images is {calibration}; raise it or omit it")
    return build_spec(settings, corruptions=_corruption_names(space), severities=tuple(space.severities),
                      n_images=n_images, calibration_images=calibration, split=split,
                      clean_whole_split=clean_whole_split, corruption_params=space.corruption_params)


def resolve_fidelity(settings: SearchSettings, space: SearchSpace) -> Fidelity:
    """The fidelity of a run: the space's, with ``--fidelity``, ``--rungs`` and ``--eval-images`` applied.

    ``--eval-images`` alone selects the fixed mode (the measurement before racing).
    """
    asked = settings.fidelity
    mode = asked.mode or ("fixed" if asked.eval_images is not None else space.fidelity.mode)
    return dataclasses.replace(space.fidelity, mode=mode, rungs=asked.rungs or space.fidelity.rungs,
                               images=asked.eval_images or space.fidelity.images)


def classes(spec: EvaluationSpec) -> int:
    """Number of classes of the spec's dataset."""
    return dataset_classes(spec.dataset, spec.data_root)


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


class _Progress:
    """Per-candidate progress lines with an ETA that includes selection and report.

    Time per evaluation is modelled as compression time plus seconds per image, both measured on the
    evaluations computed so far (cache hits are free), and the remaining work is counted in images.
    """

    def __init__(self, log: Callable[[str], None], started: float, workers: int) -> None:
        self.log = log
        self.started = started
        self.workers = workers
        self.compress = 0.0
        self.per_image = 0.0
        self.computed = 0
        self.images = 0
        self.seconds = 0.0
        self.stage = ""
        self.bound = False
        self.done = 0
        self.total = 0
        self.plan: list[tuple[int, int]] = []  # (evaluations, images each) still to come after this stage

    def start(self, stage: str, total: int, later: list[tuple[int, int]], *, bound: bool = False) -> None:
        """A new stage of ``total`` evaluations (at most ``total`` when ``bound``: racing stops some early)."""
        self.stage, self.done, self.total, self.plan, self.bound = stage, 0, total, later, bound

    def estimate(self, evaluations: int, images: int) -> float:
        """Seconds (one worker) for ``evaluations`` computed evaluations of ``images`` images each."""
        if not self.computed:
            return math.nan
        return evaluations * (self.compress / self.computed + images * self.seconds / max(1, self.images))

    def on_record(self, record: dict[str, Any], images: int) -> None:
        self.done += 1
        if not record.get("cache_hit") and record.get("status") == "ok" and not record.get("duplicate_of"):
            self.computed += 1
            compress = float(record.get("compress_seconds") or 0.0)
            self.compress += compress
            self.seconds += max(0.0, float(record.get("seconds") or 0.0) - compress)
            self.images += images
        left = (max(0, self.total - self.done) // (2 if self.bound else 1), images)
        remaining = sum(self.estimate(n, i) for n, i in [left, *self.plan]) / self.workers
        eta = "?" if math.isnan(remaining) else _fmt_time(remaining)
        window = record.get("window")
        where = f" images {window[0]}-{window[1]}" if window else ""
        self.log(f"  {self.stage} {self.done}/{'<=' if self.bound else ''}{self.total} {record.get('label', '')}{where}: "
                 f"{'cached' if record.get('cache_hit') else record.get('status')}, "
                 f"{float(record.get('seconds') or 0):.1f}s | {_fmt_time(time.perf_counter() - self.started)} "
                 f"elapsed, ETA {eta}")


def _images(n: int | str | None, classes: int, split_size: int) -> int:
    return split_size if n in ("all", None) else max(1, int(n) // classes) * classes


def _print(line: str) -> None:
    print(line, flush=True)  # progress must show at once, also when the output goes to a file or pipe


def run_search(settings: SearchSettings, *, log: Callable[[str], None] = _print,
               render: Callable[[Path], object] | None = None) -> SearchResult:
    """Runs a compression search and writes its tables; see the module docstring.

    ``render`` (e.g. :func:`moo_compress.report.render_run`, as the command line passes) is called
    with the run folder once its tables are written, to add ``summary.md`` and the figures.

    Raises:
        MooCompressError: for bad settings, a malformed space, impossible constraints, missing data.
    """
    started = time.perf_counter()
    settings = settings.resolved()
    target, execution = settings.target, settings.execution
    defaults = model_defaults(target.model)
    space = load_space(default_space(defaults.family, target.space))
    pop_size = settings.algorithm.pop_size or space.pop_size
    budgeted = settings.algorithm.budget_images is not None or settings.algorithm.time_budget is not None
    generations = settings.algorithm.generations or (UNTIL_BUDGET if budgeted else space.generations)
    if not budgeted and space.budget_images is not None:
        settings = settings.replace(algorithm={"budget_images": space.budget_images})
    budget_images = settings.algorithm.budget_images
    encoding = space.encoding(defaults.layer_groups)
    if not encoding.variables:
        raise ConfigError(f"{space.source}: every gene has a single choice; nothing to search")
    fidelity = resolve_fidelity(settings, space)
    ladder = fidelity.ladder
    model_name = source_slug(target.model) if is_source(target.model) else target.model
    out_dir = Path(settings.output.out or Path("outputs") / f"{model_name}-{space.name}-seed{settings.algorithm.seed}")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        probe = out_dir / ".write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise ConfigError(f"cannot write the run folder {out_dir}: {exc.strerror or exc}; pass --out DIR (Python: "
                          "out=...) with a writable folder") from None
    executor = ExecutorConfig(workers=execution.workers or default_workers(execution.device, execution.threads),
                              scheduler=execution.scheduler)

    how = (f"racing over rungs of {'/'.join(map(str, ladder))}" if fidelity.mode == "racing"
           else f"screening with {ladder[0]}")
    log(f"preparing {target.model} on {target.dataset}: {how} search-split images per (corruption, severity), "
        f"{executor.workers} worker(s) x {execution.threads} thread(s), {execution.precision}; loading images (a first "
        "run decodes the dataset and generates the corrupted images it needs into the cache, about a minute) ...")
    base_spec = space_spec(settings, space, None, split="search")
    _check_calibration(settings, space, base_spec)
    split_size = int(len(split_pool(base_spec)))
    select_n = (settings.fidelity.select_images if settings.fidelity.select_images is not None
                else min(split_size, 2 * ladder[-1]))
    if max(ladder[-1], select_n) > split_size:
        raise ConfigError(f"the rungs ask for {max(ladder[-1], select_n)} images per (corruption, severity) but the "
                          f"search split holds {split_size}; lower --rungs / --eval-images / --select-images")
    clean_multiple = max(1, min(fidelity.clean_multiple, split_size // max(ladder[-1], select_n)))
    if clean_multiple < fidelity.clean_multiple:
        log(f"note: fidelity.clean_multiple lowered from {fidelity.clean_multiple} to {clean_multiple}: the search "
            f"split holds {split_size} images")
    specs: dict[tuple[int, int], EvaluationSpec] = {}

    def window_spec(start: int, stop: int) -> EvaluationSpec:
        if (start, stop) not in specs:
            specs[start, stop] = dataclasses.replace(base_spec.with_window(start, stop), keep_models=True,
                                                     clean_multiple=clean_multiple).resolved()
        return specs[start, stop]

    spec = window_spec(0, ladder[0])
    n_corr = len(spec.corruptions) * len(spec.severities)
    progress = _Progress(log, started, executor.workers)

    def on_record(record: dict[str, Any]) -> None:
        progress.on_record(record, int(record.get("n_clean") or 0) + int(record.get("n_corrupted") or 0))

    evaluator = PlanEvaluator(spec, spec.cache_dir or "", executor, on_record=on_record)

    def evaluate_window(plans: list[CompressionPlan], start: int, stop: int) -> list[dict[str, Any]]:
        return dataclasses.replace(evaluator, spec=window_spec(start, stop))(plans)

    reference_plan = CompressionPlan(recovery=space.recovery)
    objectives = Objectives(robustness=space.robustness, corruptions=spec.corruptions, severities=spec.severities,
                            baseline_accuracy=math.nan, max_accuracy_drop=space.max_accuracy_drop,
                            min_compression_ratio=space.min_compression_ratio,
                            latency=space.latency is not None and space.latency.objective,
                            max_latency_ms=space.max_latency_ms)
    meter = _latency_meter(space, spec, reference_plan, log)
    racer = Racer(ladder, evaluate_window, reference_plan, objectives, racing=fidelity.mode == "racing",
                  confidence=fidelity.confidence, budget_images=budget_images, cells=n_corr,
                  deadline=started + settings.algorithm.time_budget if settings.algorithm.time_budget else None,
                  clean_multiple=clean_multiple,
                  release=lambda plans: discard_models(spec, [p.key() for p in plans]), latency=meter)
    progress.start("reference", len(ladder), [])
    try:
        baseline = racer.reference_at(ladder[0])
    except ConfigError as exc:
        raise MooCompressError(str(exc)) from None
    robustness, notes = space.robustness, []
    if robustness == "relative_mce" and not math.isfinite(
            record_metrics(baseline, baseline, spec.corruptions, spec.severities).get("relative_mce", math.nan)):
        notes.append("relative mCE is undefined at the screening fidelity (the reference's error does not rise "
                     "above its clean error under some corruption), so this run optimises mCE instead")
        log(f"warning: {notes[-1]}")
        robustness = "mce"
    objectives = dataclasses.replace(objectives, robustness=robustness,
                                     baseline_accuracy=100 * baseline["clean_accuracy"],
                                     baseline_latency_ms=float(baseline.get("latency_ms", math.nan)))
    racer.objectives = objectives
    if space.min_compression_ratio is not None:
        reachable = _max_ratio(spec, encoding)
        if reachable < space.min_compression_ratio:
            raise ConfigError(
                f"{space.source}: constraints.min_compression_ratio={space.min_compression_ratio:g} cannot be met: "
                f"the strongest plan of the space reaches {reachable:.2f}x on {target.model}; lower the "
                "constraint or add stronger choices")
    problem = CompressionProblem(encoding, objectives, racer, racer.metrics)
    base_metrics = racer.metrics(baseline)
    recovery = ", ".join(f"{k}={v}" for k, v in space.recovery.to_dict().items()) or "none"
    log(f"reference (uncompressed model after the candidates' recovery: {recovery}): clean "
        f"{base_metrics['clean_accuracy']:.2f}%, mean corruption accuracy {base_metrics['mean_corruption_accuracy']:.2f}% "
        f"on the first {ladder[0]} search images ({execution.precision}); space '{space.name}': "
        f"{len(encoding.variables)} genes, {encoding.grid_size():,} plans")
    if meter is not None:
        log(f"reference latency: {baseline['latency_ms']:.3f} ms at batch 1 (interquartile range "
            f"{baseline['latency_low_ms']:.3f}-{baseline['latency_high_ms']:.3f} ms over {meter.settings.rounds} runs), "
            f"{baseline['latency_batch_ms']} ms at batch {meter.settings.batch_size}; {meter.runtime} on "
            f"{meter.hardware}")

    select_images = select_n * (n_corr + 1) if settings.fidelity.select_images != 0 else 0
    report_images = (split_size + _images(settings.fidelity.final_images, classes(spec), split_size) * n_corr
                     if settings.fidelity.final_images else 0)

    def later(front: int, gens_left: int) -> list[tuple[int, int]]:
        per_plan = racer.spent / max(1, len(racer.entries)) if racer.entries else ladder[0] * (n_corr + 1)
        screening = (gens_left * pop_size, int(per_plan))
        if budget_images is not None:
            screening = (max(0, budget_images - racer.spent) // max(1, int(per_plan)), int(per_plan))
        return [screening, (front + 3 if select_images else 0, select_images // 2),
                (front + 2 if report_images else 0, report_images)]

    run_log = _Log()
    history: list[dict[str, Any]] = []
    reference = objectives.reference_point()  # fixed for the run: hypervolumes of generations compare
    test_labels = dataset_labels(spec.dataset, "test", data_root=spec.data_root, cache_dir=spec.cache_dir)
    pool = split_pool(spec)
    order_labels = test_labels[pool[split_order(spec, test_labels, pool)]]
    total_gens = generations if space.algorithm != "grid" else -(-encoding.grid_size() // pop_size)

    def before_generation(gen: int, size: int) -> None:
        front = int(_frame(run_log, problem)["pareto"].sum()) if run_log.records else pop_size // 2
        shown = "?" if total_gens >= UNTIL_BUDGET else total_gens
        progress.start(f"gen {gen}/{shown}", size * len(ladder), later(front, total_gens - gen),
                       bound=len(ladder) > 1)

    def record_generation(gen: int, X: np.ndarray, pop_records: list[dict[str, Any]], t_gen: float,
                          total: int) -> None:
        new = hits = 0
        for x, record in zip(X, pop_records):
            if run_log.add(record, gen, encoding.values(x)):
                new += 1
                hits += bool(record.get("cache_hit"))
        frame = _frame(run_log, problem)
        F = np.vstack(frame["_F"].to_numpy()) if len(frame) else np.zeros((0, len(objectives.names)))
        hv = hypervolume(F[pareto_mask(F, frame["feasible"].to_numpy())], reference) if len(frame) else 0.0
        elapsed = time.perf_counter() - started
        spent_before = history[-1]["images"] if history else 0
        history.append({"generation": gen, "evaluations": len(run_log.records), "new": new, "cache_hits": hits,
                        "failed": int((frame["status"] != "ok").sum()), "hypervolume": hv,
                        "front_size": int(frame["pareto"].sum()), "images": racer.spent,
                        "images_new": racer.spent - spent_before, "seconds": round(elapsed, 1)})
        failed = [r for r in pop_records if r.get("status") != "ok"]
        if failed and not history[:-1]:
            log(f"warning: {len(failed)} candidate(s) failed, e.g. {failed[0]['label']}: {failed[0]['error']} "
                "(failures are recorded in evaluations.csv and the search goes on)")
        remaining = sum(progress.estimate(n, i) for n, i in later(history[-1]["front_size"], total - gen))
        eta = "?" if math.isnan(remaining) else _fmt_time(remaining / executor.workers)
        shown = "?" if total >= UNTIL_BUDGET else total
        log(f"gen {gen}/{shown} | evals {len(run_log.records)} (+{new}, {hits} cached) | "
            f"failed {history[-1]['failed']} | front {history[-1]['front_size']} | HV {hv:.4f} | "
            f"images {racer.spent:,}{'' if budget_images is None else f'/{budget_images:,}'} | "
            f"{_fmt_time(elapsed)} elapsed, ETA {eta} (selection and report included)")
        outputs.write_progress(out_dir, frame, pd.DataFrame(history))

    try:
        if space.algorithm == "grid":
            _run_grid(problem, encoding, pop_size, settings, racer, before_generation, record_generation)
        else:
            _run_nsga2(problem, encoding, pop_size, generations, settings, racer, before_generation,
                       record_generation, space.surrogate)
        frame = _frame(run_log, problem)
        keys = final.contenders(frame, run_log.records, lambda r: racer.reference_at(int(r["images_per_cell"])),
                                objectives, lambda n: order_labels[:n], limit=2)
        screening_front = int(frame["pareto"].sum())
        log(f"selection: the {screening_front} plans of the screening front and {len(keys) - screening_front} within "
            f"its noise are brought to {select_n} search-split images per (corruption, severity) ...")
        select_spec = None
        select_eval = None
        if settings.fidelity.select_images != 0:
            select_spec = window_spec(0, select_n)
            select_eval = functools.partial(racer.extend, images=select_n)
        # at most one record per contender and window, and the reference's own extension
        progress.start("selection", len(keys) + 2, later(len(keys) // 2, 0)[2:], bound=True)
        front, select_ref = final.select(frame, keys, select_eval, reference_plan, objectives, log, images=select_n)
        frame["contender"] = frame["plan_key"].isin(keys)
        frame["selected"] = frame["plan_key"].isin(set(front["plan_key"]))
        ref_select = record_metrics(select_ref, select_ref, spec.corruptions, spec.severities) if select_ref \
            else base_metrics
        picks = final.recommend(front, ref_select["clean_accuracy"], objectives.robustness,
                                min_ratio=settings.output.pick_min_ratio, max_drop=settings.output.pick_max_drop,
                                latency=objectives.latency)
        report_spec = None
        report_base: dict[str, Any] = {}
        if settings.fidelity.final_images:
            split = "search" if settings.fidelity.report_on_search else "report"
            report_spec = dataclasses.replace(space_spec(settings, space, settings.fidelity.final_images, split=split,
                                                         clean_whole_split=True), keep_models=True).resolved()
            progress.start("report", len(front) + 2, [])
            report_eval = dataclasses.replace(evaluator, spec=report_spec)
            front, report_base = final.report(front, report_eval, reference_plan, objectives, log)
            if settings.output.held_out != "off":
                rows = sorted({p["row"] for p in picks if p["row"] is not None}) \
                    if settings.output.held_out == "recommended" else list(range(len(front)))
                progress.start("held out", len(rows) + 1, [])
                final_n = settings.fidelity.final_images
                held_n = settings.fidelity.held_out_images or HELD_OUT_IMAGES
                held_n = held_n if final_n == "all" else min(held_n, int(final_n))
                held_spec = space_spec(settings, space, held_n, split=split)
                front, report_base["heldout"] = final.held_out(front, rows, report_eval, held_spec, reference_plan,
                                                               objectives, log)
            if meter is not None:  # a deployment search: the recommendations as files ONNX Runtime runs
                rows = sorted({p["row"] for p in picks if p["row"] is not None})
                front, report_base["deployed"] = final.deployed(front, rows, report_spec, out_dir / "onnx", log)
    finally:
        close_executors()
        discard_models(spec)
    if not settings.fidelity.final_images:
        for c in final.METRICS:
            front[f"final/{c}"] = front[f"select/{c}"]
        for c in LATENCY_FIELDS:
            if c in front:
                front[f"final/{c}"] = front[c]
    recommendations = _recommendations(front, picks, objectives.robustness, report_base)
    baseline_info = {"screening": base_metrics, "selection": ref_select if select_ref else None,
                     "final": report_base.get("reference"), "original": report_base.get("original"),
                     "recovery": report_base.get("recovery"), "reference_plan": reference_plan.to_dict(),
                     "report": {k: report_base.get(k) for k in ("n_clean", "n_corrupted", "split")},
                     "heldout": report_base.get("heldout"), "deployed": report_base.get("deployed"),
                     "report_on_search": settings.fidelity.report_on_search, "notes": notes}
    result = SearchResult(out_dir, frame.drop(columns=["_F"]), front.drop(columns=["_F"], errors="ignore"),
                          recommendations, pd.DataFrame(history), baseline_info, time.perf_counter() - started)
    fidelity_info = {**fidelity.to_dict(), "ladder": list(ladder), "clean_multiple": clean_multiple, "select_images": select_n if select_spec else None,
                     "alpha_per_look": racer.alpha if racer.racing else None,
                     "budget_images": budget_images, "time_budget": settings.algorithm.time_budget,
                     "images_spent": racer.spent,
                     "stopped": int(frame["stopped"].notna().sum()) if "stopped" in frame else 0}
    outputs.write_all(result, settings=settings, space=space, spec=spec, final_spec=report_spec,
                      select_spec=select_spec, encoding=encoding, objectives=objectives, fidelity=fidelity_info,
                      latency=meter.describe() if meter is not None else None)
    if render is not None:
        render(out_dir)
    log(f"done in {_fmt_time(time.perf_counter() - started)}: {len(frame)} plans evaluated, {len(result.pareto)} on "
        f"the front; results in {out_dir}/{' (summary.md)' if render is not None else ''}")
    return result


def _check_calibration(settings: SearchSettings, space: SearchSpace, spec: EvaluationSpec) -> None:
    """A clear error, naming what to change, when the training split holds fewer images than calibration asks for."""
    if not spec.calibration_images:
        return
    available = len(dataset_labels(spec.dataset, "train", data_root=spec.data_root, cache_dir=spec.cache_dir))
    if available >= spec.calibration_images:
        return
    if settings.target.calibration_images:
        fix = f"pass --calibration-images {available} or fewer"
        if space.recovery.bn_images > available:
            fix += f", and a copy of {space.source} with recovery.bn_images at most {available}"
    else:
        fix = (f"copy {space.source}, lower recovery.bn_images to at most {available} and pass the copy with "
               "--space")
    raise ConfigError(f"the space's recovery needs {spec.calibration_images} training images for calibration, but "
                      f"the training split of {spec.dataset} holds {available}: {fix}")


def _latency_meter(space: SearchSpace, spec: EvaluationSpec, reference_plan: CompressionPlan,
                   log: Callable[[str], None]) -> LatencyMeter | None:
    """The latency meter of a space that measures latency (None otherwise), in this (the main) process."""
    return None if space.latency is None else LatencyMeter.for_spec(space.latency, spec, reference_plan, log)


def _recommendations(front: pd.DataFrame, picks: list[dict[str, Any]], robustness: str,
                     report_base: dict[str, Any]) -> list[dict[str, Any]]:
    """The picks (decided on the search split) with their report-split numbers, intervals and flags."""
    out = []
    for pick in picks:
        row = pick["row"]
        entry = {k: pick[k] for k in ("method", "title")}
        if row is None:
            out.append({**entry, "row": None, "rationale": "no plan on the front qualifies"})
            continue
        r = front.iloc[row]
        entry.update(row=int(row), plan_key=r["plan_key"], label=r["label"], plan=r["plan"],
                     decided_on="search split", reported_on=report_base.get("split") or "search split (selection)")
        for c in final.METRICS:
            entry[c] = float(r[f"final/{c}"])
        if isinstance(r.get("onnx/path"), str):
            entry["onnx"] = {"file": f"onnx/{r['onnx/path']}", "kind": r["onnx/kind"],
                             "accuracy": float(r["onnx/accuracy"]), "torch_accuracy": float(r["onnx/torch_accuracy"]),
                             "gap": float(r["onnx/gap"]), "within_tolerance": bool(r["onnx/within"])}
        if math.isfinite(float(r.get("latency_ms", math.nan))):
            entry["latency"] = {"ms": float(r["latency_ms"]), "low_ms": float(r["latency_low_ms"]),
                                "high_ms": float(r["latency_high_ms"]), "speedup": float(r["latency_speedup"]),
                                "speedup_low": float(r["latency_speedup_low"]),
                                "speedup_high": float(r["latency_speedup_high"]),
                                "batch_ms": _float_or_none(r.get("latency_batch_ms")),
                                "batch_speedup": _float_or_none(r.get("latency_batch_speedup"))}
        intervals = {}
        for name in ("clean_delta", "mca_delta", "mce", "relative_mce", "worst_class_delta", "worst_corruption_delta"):
            if f"final/{name}_low" in r:
                intervals[name] = {"estimate": float(r[f"final/{name}"]), "low": float(r[f"final/{name}_low"]),
                                   "high": float(r[f"final/{name}_high"])}
        entry["intervals"] = intervals
        if math.isfinite(float(r.get("heldout/mca_delta", math.nan))):
            entry["heldout"] = {"mean_corruption_accuracy": float(r["heldout/mean_corruption_accuracy"]),
                                "mca_delta": {"estimate": float(r["heldout/mca_delta"]),
                                              "low": float(r["heldout/mca_delta_low"]),
                                              "high": float(r["heldout/mca_delta_high"])},
                                "rank_reversal": r["heldout/rank_reversal"]
                                if isinstance(r.get("heldout/rank_reversal"), str) else None}
        for name in ("worst_class", "worst_corruption", "dominated_on_report_by", "tied_with"):
            if name in r and not (isinstance(r[name], float) and math.isnan(r[name])):
                entry[name] = r[name] if not isinstance(r[name], np.generic) else r[name].item()
        threshold = pick.get("threshold")
        if threshold is not None:
            entry["threshold"] = {**threshold, "met_by": _met_by(threshold, intervals, entry)}
        entry["rationale"] = _rationale(pick["why"], entry, robustness)
        out.append(entry)
    return out


def _float_or_none(value: Any) -> float | None:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _met_by(threshold: dict[str, Any], intervals: dict[str, Any], entry: dict[str, Any]) -> str:
    """``interval`` (the whole interval meets the threshold), ``point`` (only the estimate) or ``no``."""
    if threshold["metric"] == "compression_ratio":
        return "exact" if entry["compression_ratio"] >= threshold["min"] else "no"
    claim = intervals.get(threshold["metric"])
    if claim is None:  # no report split measured: the pick met it on the selection numbers, as a point
        return "point"
    if claim["low"] >= threshold["min"]:
        return "interval"
    return "point" if claim["estimate"] >= threshold["min"] else "no"


def _rationale(why: str, entry: dict[str, Any], robustness: str) -> str:
    iv = entry["intervals"]

    def fmt(name: str, signed: bool = True) -> str:
        if name not in iv or not math.isfinite(iv[name]["estimate"]):
            return "undefined"
        return Interval(iv[name]["estimate"], iv[name]["low"], iv[name]["high"], LEVEL, 1).format(1, signed)

    text = (f"{why}. {entry['compression_ratio']:.1f}x smaller; clean {fmt('clean_delta')} points, mean corruption "
            f"accuracy {fmt('mca_delta')} points, mCE {fmt('mce', False)}")
    if robustness == "relative_mce":
        text += f", relative mCE {fmt('relative_mce', False)}"
    text += " against the reference (95% intervals over report images)"
    if "latency" in entry:
        lat = entry["latency"]
        faster = speedup_verdict(lat["speedup_low"], lat["speedup_high"])
        text += (f"; batch-1 latency {lat['ms']:.3g} ms (interquartile range {lat['low_ms']:.3g}-{lat['high_ms']:.3g} ms), "
                 f"speed-up {lat['speedup']:.2f}x [{lat['speedup_low']:.2f}, {lat['speedup_high']:.2f}] over the "
                 f"reference timed in the same rounds: {faster}")
    if "worst_class" in entry:
        text += (f"; worst-hit class {entry['worst_class']} {fmt('worst_class_delta')}, worst-hit corruption "
                 f"{entry['worst_corruption']} {fmt('worst_corruption_delta')}")
    if "onnx" in entry:
        onnx = entry["onnx"]
        text += (f"; its ONNX file ({onnx['file']}, {'int8 QDQ' if onnx['kind'] == 'qdq' else 'float weights'}) "
                 f"gives {onnx['accuracy']:.2f}% clean top-1 in ONNX Runtime against {onnx['torch_accuracy']:.2f}% in "
                 f"PyTorch on the same report images" + ("" if onnx["within_tolerance"] else " (OUTSIDE the tolerance)"))
    threshold = entry.get("threshold")
    if threshold and threshold["metric"] == "clean_delta":
        text += {"interval": "; the whole interval is within the allowed drop",
                 "point": "; only the point estimate is within the allowed drop (the interval reaches beyond it)",
                 "no": "; on the report split it is NOT within the allowed drop"}[threshold["met_by"]]
    if entry.get("dominated_on_report_by"):
        text += f"; dominated on the report split by {entry['dominated_on_report_by']}"
    if entry.get("tied_with"):
        text += f"; statistically tied with {entry['tied_with']}"
    return text + "."


def _initial_population(encoding: Encoding, pop_size: int, seed: int) -> np.ndarray:
    """The uncompressed genotype (all zeros), the strongest one, each technique alone at its mildest
    setting (e.g. 50% pruning, 16 clusters, 8 bits: the accurate end of the front, which random
    genotypes seldom reach), then random genotypes."""
    rng = np.random.default_rng(seed)
    upper = encoding.upper_bounds
    X = rng.integers(0, upper + 1, size=(pop_size, len(upper)))
    kinds = [v.gene.kind for v in encoding.variables]
    seeds = [np.zeros(len(upper), dtype=int), upper.copy()]
    for kind in dict.fromkeys(kinds):
        mild = np.zeros(len(upper), dtype=int)
        mild[[i for i, k in enumerate(kinds) if k == kind]] = 1
        seeds.append(np.minimum(mild, upper))
    for i, x in enumerate(seeds[:pop_size]):
        X[i] = x
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
               settings: SearchSettings, racer: Racer, before_generation: Callable[[int, int], None],
               record_generation: Callable[..., None], surrogate: Surrogate | None = None) -> None:
    """NSGA-II until ``generations`` or the racer's budget; offspring screened by ``surrogate`` when enabled."""
    from pymoo.algorithms.moo.nsga2 import NSGA2
    from pymoo.operators.crossover.sbx import SBX
    from pymoo.operators.mutation.pm import PM
    from pymoo.operators.repair.rounding import RoundingRepair
    from pymoo.termination.max_gen import MaximumGenerationTermination

    surrogate = surrogate or Surrogate(candidates=1)
    archive = _archive_elimination()
    # Integer genes as pymoo recommends for discrete variables: real-coded SBX and polynomial mutation
    # with a small distribution index (wide steps: neighbouring integers are different plans), rounded.
    algorithm = NSGA2(
        pop_size=pop_size,
        sampling=_initial_population(encoding, pop_size, settings.algorithm.seed),
        crossover=SBX(prob=0.9, eta=3.0, vtype=float, repair=RoundingRepair()),
        mutation=PM(eta=3.0, vtype=float, repair=RoundingRepair()),
        eliminate_duplicates=archive,
    )
    algorithm.setup(problem, termination=MaximumGenerationTermination(generations), seed=settings.algorithm.seed,
                    verbose=False)
    seen_X: list[np.ndarray] = []
    seen_F: list[np.ndarray] = []
    seen_G: list[np.ndarray] = []
    gen = 0
    while algorithm.has_next() and not racer.exhausted:
        t0 = time.perf_counter()
        if gen > 0:  # the initial population is NSGA-II's own sampling
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
        affordable = racer.affordable()
        if affordable is not None and len(X) > affordable:  # the budget's last plans: the first proposed
            pop, X = pop[:affordable], X[:affordable]
        before_generation(gen + 1, len(X))
        algorithm.evaluator.eval(problem, pop)
        algorithm.tell(infills=pop)
        archive.seen.update(map(tuple, X))
        records = list(pop.get("record"))
        for i, record in enumerate(records):
            if record.get("status") == "ok":
                seen_X.append(X[i])
                seen_F.append(pop[i].F)
                seen_G.append(pop[i].G if problem.n_ieq_constr else np.zeros(0))
        gen += 1
        record_generation(gen, X, records, time.perf_counter() - t0, generations)
        if settings.algorithm.max_evals is not None and algorithm.evaluator.n_eval >= settings.algorithm.max_evals:
            break


def _run_grid(problem: CompressionProblem, encoding: Encoding, batch: int, settings: SearchSettings,
              racer: Racer, before_generation: Callable[[int, int], None],
              record_generation: Callable[..., None]) -> None:
    X = np.array(list(encoding.grid()))
    if settings.algorithm.max_evals is not None:
        X = X[: settings.algorithm.max_evals]
    batches = [X[i:i + batch] for i in range(0, len(X), batch)]
    for gen, chunk in enumerate(batches, start=1):
        if racer.exhausted:
            break
        t0 = time.perf_counter()
        before_generation(gen, len(chunk))
        out = problem.evaluate(chunk, return_as_dictionary=True)
        record_generation(gen, chunk, list(out["record"]), time.perf_counter() - t0, len(batches))


def _frame(run_log: _Log, problem: CompressionProblem) -> pd.DataFrame:
    """One row per distinct evaluated plan: genes, plan, metrics, objectives, feasibility, Pareto flag."""
    rows = []
    for key, record in run_log.records.items():
        metrics = problem.metrics(record)
        F = problem.objectives.objective_vector(metrics)
        G = problem.objectives.constraint_vector(metrics)
        row = {"plan_key": key, "generation": run_log.generation[key], "label": record["label"],
               **{f"gene/{k}": ("off" if v is None else v) for k, v in run_log.genes[key].items()},
               "status": record["status"], "error": record.get("error"), "rung": record.get("rung"),
               "images_per_cell": record.get("images_per_cell"), "stopped": record.get("stopped"),
               "cache_hit": bool(record.get("cache_hit")), "seconds": record.get("seconds"),
               **(metrics or {}), "feasible": metrics is not None and bool(np.all(G <= 0)),
               "plan": record["plan"], "_F": F}
        rows.append(row)
    frame = pd.DataFrame(rows)
    for column in final.METRICS:
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
