"""Re-evaluating compression plans on more images, from a search run or given on the command line.

Used by ``python -m moo_compress.evaluate --run DIR --select knee|pareto|METHOD|ROW... [--plan JSON]
[--split report|search|all] [--images N|all] [--export DIR] [--export-onnx PATH]`` and, through
:func:`reevaluate_run`, by ``notebooks/explore_fronts.ipynb``.

Which images: a run selected its plans on the *search* split of the test set, so its plans are
re-evaluated on the *report* split by default (the images the search never used to choose them,
with the run's split seed); ``split="search"`` or ``"all"`` is allowed but warns that the numbers are
optimistic. Plans given without a run use the whole test set (``"all"``): no selection happened.

What the numbers are compared with: the *reference*, the uncompressed model after the same recovery as
the plans (``CompressionPlan(recovery=plan.recovery)``, one per distinct recovery), evaluated on the
same images. Every delta (clean accuracy, mean corruption accuracy, mCE, worst class and corruption)
comes with a paired 95% interval over images (:func:`moo_compress.search.claims.plan_claims`); the
intervals cover the sampling of test images only. The untouched model (*the original*) is measured
beside the reference.

Cost: by default :data:`DEFAULT_IMAGES` images per (corruption, severity) and clean accuracy on every
image of the split, which takes minutes on a 2-core CPU for ResNet-20 and VGG-19; ``images="all"``
(every image of the split for every (corruption, severity), about ten times more work on CIFAR-10) is
an explicit choice. Evaluations go through the same cache as the search (a run's own report
evaluations are read back when the images, precision and calibration match), so asking twice costs
nothing, and a line per plan shows the progress: logged to ``moo_compress.search.reevaluate`` at INFO level
(the command line prints them) and handed to the ``progress`` callback when one is given; ``progress=True``
(a notebook's choice) prints the messages and shows the evaluations as a progress bar.

The plans, options and warnings live in :mod:`~moo_compress.search.reeval_plans`, the typed results in
:mod:`~moo_compress.search.reeval_results` and their text in :mod:`~moo_compress.search.reeval_format`;
their public names are importable from here too.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from moo_compress.compress import CompressionPlan, RecoveryConfig, compress
from moo_compress.compress.calibration import calibration_size
from moo_compress.compress.size import state_dict_bytes
from moo_compress.data import dataset_labels, split_indices
from moo_compress.deploy.export import ExportResult, export_compressed
from moo_compress.errors import ConfigError
from moo_compress.report.rundata import RunData, load_run
from moo_compress.search.cache import EvaluationCache
from moo_compress.search.candidate import EvaluationSpec, load_resources
from moo_compress.search.claims import LEVEL, plan_claims
from moo_compress.search.evaluation_record import EvaluationRecord
from moo_compress.search.executors import ExecutorConfig, default_workers
from moo_compress.search.final import export_and_check, plan_file_name
from moo_compress.search.latency import LatencyMeter, LatencySettings
from moo_compress.search.objectives import record_metrics
from moo_compress.search.problem import PlanEvaluator
from moo_compress.search.progress import progress_bar
from moo_compress.search.reeval_format import format_results
from moo_compress.search.reeval_plans import (
    DEFAULT_IMAGES,
    SPLIT_CHOICES,
    SelectionBiasWarning,
    images_option,
    parse_plan,
    run_latency,
    run_settings,
    select_plans,
    selection_warning,
    split_option,
)
from moo_compress.search.reeval_results import (
    Latency,
    LatencyInfo,
    ModelResult,
    OnnxCheck,
    PairedClaims,
    Reevaluation,
)
from moo_compress.search.run import build_spec
from moo_compress.search.settings import SearchSettings

__all__ = [
    "DEFAULT_IMAGES",
    "SPLIT_CHOICES",
    "Latency",
    "LatencyInfo",
    "ModelResult",
    "OnnxCheck",
    "PairedClaims",
    "Reevaluation",
    "SelectionBiasWarning",
    "format_results",
    "images_option",
    "onnx_paths",
    "parse_plan",
    "reevaluate_plans",
    "reevaluate_run",
    "run_latency",
    "run_settings",
    "select_plans",
    "selection_warning",
    "split_option",
]

logger = logging.getLogger(__name__)

#: Receives each progress line of a re-evaluation.
ProgressLine = Callable[[str], None]


def reevaluate_run(run: RunData | str | os.PathLike[str], select: Sequence[str | int] = ("knee",), *,
                   images: int | str = DEFAULT_IMAGES, split: str = "report",
                   plans: Sequence[CompressionPlan | str] = (), export_dir: str | os.PathLike[str] | None = None,
                   onnx_export: str | os.PathLike[str] | None = None, latency: bool = False,
                   device: str | None = None, precision: str | None = None, batch_size: int | None = None,
                   cache_dir: str | os.PathLike[str] | None = None, workers: int | None = None,
                   progress: ProgressLine | bool | None = None) -> Reevaluation:
    """Re-evaluates plans of a search run against their reference on the run's report split, through the cache.

    The model, data, corruptions, severities, precision and split seed come from the run's
    ``config.yaml``. The selected plans, their reference (the uncompressed model after the same recovery,
    one per distinct recovery) and the original model are evaluated on the same images: by default
    ``images=500`` report-split images per (corruption, severity) and every image of the report split for
    clean accuracy, which takes minutes on a 2-core CPU for ResNet-20 and VGG-19. ``images="all"``
    (every image of the split for every (corruption, severity), full fidelity) is an explicit and much
    slower choice. Asking again for the same plans and images reads them from the cache.

    Args:
        run: The run (or its folder).
        select: Which plans; see :func:`select_plans`.
        images: Images per (corruption, severity), drawn stratified from the split (capped at what the
            split holds), or ``"all"``. Clean accuracy always uses every image of the split.
        split: ``"report"`` (default: images the search never used to choose the plans), ``"search"``
            (the images that selected them) or ``"all"`` (the whole test set); the last two warn
            (:class:`SelectionBiasWarning`) that the numbers are optimistic.
        plans: More plans to evaluate beside the selected ones (:class:`CompressionPlan` or the JSON of
            :func:`parse_plan`), named ``plan 0``, ``plan 1``...
        export_dir: When given, each selected plan's compressed model is written there as a packed
            file (``<arch>-<label>-<key>.mcpk``).
        onnx_export: When given, each selected plan's compressed model is also written as an ONNX file
            for ONNX Runtime (:func:`~moo_compress.compress.export_onnx`): this file when it ends in
            ``.onnx`` (one plan only), else into this folder (``<arch>-<label>-<key>.onnx``); its clean
            accuracy in ONNX Runtime on the split is measured beside PyTorch's.
        latency: Also time each plan's deployed form against its reference's on this machine
            (:func:`run_latency`): the run's latency settings when it measured latency, else the defaults
            of :class:`~moo_compress.search.latency.LatencySettings` (ONNX Runtime, 1 thread, 100 rounds).
        device: Overrides the run's device (``cpu``, ``cuda``, ``auto``).
        precision: Overrides the run's precision (``fp32``, ``bf16``).
        batch_size: Overrides the run's batch size.
        cache_dir: Overrides the run's cache root.
        workers: Processes evaluating plans not yet cached (default: one per ``threads`` CPU cores, or
            per GPU; serial when at most one plan is missing).
        progress: Receives a line per plan evaluated (done/total, name, label, seconds) and the lines
            before them; ``True`` prints the messages and shows the evaluations as a progress bar (a
            notebook's choice). They are also logged (``moo_compress.search.reevaluate``, INFO).

    Returns:
        The reference(s), then ``original`` (left out when it is the reference: plans without recovery),
        then the plans, each with its metrics and paired claims against its reference, and the images
        used; :meth:`Reevaluation.to_frame` gives them as a table.

    Raises:
        MooCompressError: for a missing run, an unknown selection or split, or missing data or weights.
    """
    run = run if isinstance(run, RunData) else load_run(run)
    split = split_option(split, run=True)
    settings = run_settings(run, {"device": device, "batch_size": batch_size, "precision": precision,
                                  "cache_dir": None if cache_dir is None else str(cache_dir)})
    chosen = select_plans(run, list(select))
    chosen += [(f"plan {i}", p if isinstance(p, CompressionPlan) else parse_plan(p)) for i, p in enumerate(plans)]
    warning = selection_warning(split, run)
    if warning:
        warnings.warn(warning, SelectionBiasWarning, stacklevel=2)
    info = run.config["run"]
    baseline = run.knees.get("baseline") or {}
    damaged = (baseline.get("reference_check") or {}).get("damaged")
    reference = CompressionPlan() if damaged else None
    if reference is None and baseline.get("promotion") and baseline.get("reference_plan"):
        # promoted plans carry the expensive recovery but were measured against the run's reference
        reference = CompressionPlan.from_dict(baseline["reference_plan"])
    return reevaluate_plans(settings, chosen, corruptions=tuple(info["corruptions"]),
                            severities=tuple(info["severities"]), corruption_params=info.get("corruption_params"),
                            images=images_option(images), split=split, export_dir=export_dir,
                            onnx_export=onnx_export, workers=workers, progress=progress, warning=warning,
                            latency=run_latency(run) if latency else None,
                            reference=reference)


@dataclass(frozen=True)
class _Lineup:
    """Who is evaluated: each reference, the original model (unless it is the reference), then the plans."""

    references: dict[str, CompressionPlan]  # plan key -> reference
    ref_names: dict[str, str]  # plan key of a reference -> its name
    rows: list[tuple[str, str, CompressionPlan, str | None]]  # name, role, plan, key of its reference
    notes: list[str]

    @classmethod
    def of(cls, plans: list[tuple[str, CompressionPlan]], chosen: CompressionPlan | None = None) -> _Lineup:
        references: dict[str, CompressionPlan] = {}
        for _, plan in plans:
            reference = chosen or CompressionPlan(recovery=plan.recovery)
            references.setdefault(reference.key(), reference)
        original = CompressionPlan()
        if not references:
            references[original.key()] = original
        ref_names = {key: "reference" if len(references) == 1 else f"reference ({_recovery_text(p.recovery)})"
                     for key, p in references.items()}
        rows: list[tuple[str, str, CompressionPlan, str | None]] = [
            (ref_names[key], "reference", plan, None) for key, plan in references.items()]
        notes = []
        if original.key() in references:
            notes.append("the run's reference check found that the plans' recovery damages the uncompressed model, "
                         "so their reference is the original model" if chosen is not None else
                         "the plans have no recovery step, so their reference is the original model")
        else:
            rows.append(("original", "original", original, next(iter(references))))
        rows += [(name, "plan", plan, (chosen or CompressionPlan(recovery=plan.recovery)).key())
                 for name, plan in plans]
        return cls(references, ref_names, rows, notes)

    @property
    def plans(self) -> list[CompressionPlan]:
        """Every plan to evaluate, in order."""
        return [plan for _, _, plan, _ in self.rows]

    @property
    def names(self) -> dict[str, str]:
        """Plan key -> the first name it goes by (for the progress lines)."""
        names: dict[str, str] = {}
        for name, _, plan, _ in self.rows:
            names.setdefault(plan.key(), name)
        return names

    def describe(self, split: str, spec: EvaluationSpec, per_pair: int, n_plans: int) -> str:
        """The line announcing the re-evaluation."""
        recovery = "; ".join(_recovery_text(p.recovery) for p in self.references.values())
        where = "the whole test set" if split == "all" else f"the {split} split"
        models = f"the reference (the uncompressed model after the plans' recovery: {recovery})"
        models += " and the original model" if CompressionPlan().key() not in self.references else ""
        return (f"re-evaluating {n_plans} plan(s), {models} on {where} of {spec.dataset}: {per_pair:,} images per "
                f"(corruption, severity) x {len(spec.corruptions) * len(spec.severities)} pairs, every image of the "
                f"split for clean accuracy, {spec.precision} ...")


def reevaluate_plans(settings: SearchSettings, plans: Sequence[tuple[str, CompressionPlan]], *,
                     corruptions: tuple[str, ...], severities: tuple[int, ...], images: int | str, split: str,
                     corruption_params: str | None = None, export_dir: str | os.PathLike[str] | None = None,
                     onnx_export: str | os.PathLike[str] | None = None, latency: LatencySettings | None = None,
                     workers: int | None = None, warning: str | None = None,
                     progress: ProgressLine | bool | None = None,
                     reference: CompressionPlan | None = None) -> Reevaluation:
    """Evaluates named ``plans``, their reference(s) and the original model on the same images of ``split``.

    :func:`reevaluate_run` calls it with a run's settings and plans; ``python -m moo_compress.evaluate
    --plan`` with settings made from its options.

    Args:
        settings: The model, data, precision, split seed and execution settings.
        plans: ``(name, plan)`` of each plan.
        corruptions: Corruptions to evaluate.
        severities: Their severities.
        images: Images per (corruption, severity) (:func:`images_option`), capped at what the split holds.
        split: ``report``, ``search`` or ``all``.
        corruption_params: The corruption parameter set (None: the dataset's).
        export_dir: Write each plan as a packed file there.
        onnx_export: Write each plan as an ONNX file: this file (one plan) or into this folder.
        latency: Time each plan's deployed form against its reference's, so.
        workers: Processes evaluating plans not yet cached.
        warning: Why the numbers are optimistic (see :func:`selection_warning`), kept with the results.
        progress: Receives each progress line (``True``: prints the messages and shows the evaluations as a
            progress bar); they are also logged.
        reference: The model every plan is compared with (None: the uncompressed model under each plan's
            recovery); :func:`reevaluate_run` passes the original when the run's reference check chose it.

    Raises:
        MooCompressError: for invalid options, or missing data or weights.
    """
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise ConfigError(f"workers must be a positive integer, got {workers!r}")
    plans = list(plans)
    say = _progress_lines(progress)
    lineup = _Lineup.of(plans, reference)
    spec = build_spec(settings, corruptions=corruptions, severities=severities, n_images=images,
                      calibration_images=_calibration(settings, lineup.plans), split=split, clean_whole_split=True,
                      corruption_params=corruption_params)
    spec, per_pair, capped = _fit_to_split(spec)
    onnx_files = None if onnx_export is None else onnx_paths(spec.arch, plans, Path(onnx_export))  # fails early
    notes = lineup.notes + ([capped] if capped else [])
    say(lineup.describe(split, spec, per_pair, len(plans)))
    spec = spec.resolved()
    records = _evaluate(spec, lineup, workers, say, bar=progress is True)
    models = _model_results(spec, lineup, records, notes)
    dense_bytes = None
    if export_dir is not None:
        dense_bytes, exported = _export(spec, plans, Path(export_dir))
        models = [dataclasses.replace(m, export=exported.get(m.plan_key)) if m.role == "plan" else m for m in models]
    if onnx_files is not None:
        onnx = export_and_check(spec, [plan for _, plan in plans], onnx_files, say)
        models = [dataclasses.replace(m, onnx=_onnx_check(onnx.get(m.plan_key))) if m.role == "plan" else m
                  for m in models]
    latency_info = None
    if latency is not None:
        models, latency_info = _with_latency(models, spec, lineup, latency, say)
    res = load_resources(spec)
    return Reevaluation(tuple(models), arch=spec.arch, dataset=spec.dataset, split=split, split_seed=spec.split_seed,
                        precision=spec.precision, n_clean=len(res.clean), n_corrupted=len(res.corrupted),
                        pairs=len(spec.corruptions) * len(spec.severities), level=LEVEL, warning=warning,
                        notes=tuple(notes), dense_bytes=dense_bytes, latency=latency_info,
                        references={lineup.ref_names[k]: _recovery_text(p.recovery)
                                    for k, p in lineup.references.items()})


def _progress_lines(progress: ProgressLine | bool | None) -> ProgressLine:
    """Logs each line, and hands it to ``progress`` (``True``: prints it, the explicit choice of a notebook)."""
    extra = progress if callable(progress) else (lambda line: print(line, flush=True)) if progress else None

    def say(line: str) -> None:
        logger.info(line)
        if extra is not None:
            extra(line)

    return say


def _on_record(names: dict[str, str], say: ProgressLine) -> Callable[[EvaluationRecord], None]:
    """A line per plan evaluated: done/total, name, label, and how long it took (or that it was cached)."""
    started = time.perf_counter()
    done = 0

    def on_record(record: EvaluationRecord) -> None:
        nonlocal done
        done += 1
        if record.cache_hit:
            how = "cached"
        elif record.ok:
            how = f"{record.seconds:.1f}s"
        else:
            how = f"failed after {record.seconds:.1f}s: {record.error}"
        minutes, seconds_left = divmod(round(time.perf_counter() - started), 60)
        elapsed = f"{minutes}m{seconds_left:02d}s" if minutes else f"{seconds_left}s"
        say(f"  [{done}/{len(names)}] {names.get(record.plan_key, '?')}: {record.label}: "
            f"{how} ({elapsed} elapsed)")

    return on_record


def _evaluate(spec: EvaluationSpec, lineup: _Lineup, workers: int | None, say: ProgressLine, *,
              bar: bool = False) -> dict[str, EvaluationRecord]:
    """Plan key -> record of every plan of ``lineup``, read from the cache or computed (in processes).

    With ``bar`` the per-plan lines are logged and shown as a progress bar instead of handed to ``say``."""
    names = lineup.names
    cache = EvaluationCache(spec.cache_dir or "")
    context = spec.context_key()
    missing = sum(cache.get(context, key) is None for key in names)
    n_workers = max(1, min(workers or default_workers(spec.device, spec.threads), missing))
    say(f"{len(names) - missing} of {len(names)} evaluation(s) cached, {missing} to compute"
        + (f" in {n_workers} processes" if n_workers > 1 else ""))
    shown = progress_bar(len(names), "evaluations", leave=True) if bar else None
    on_record = _on_record(names, say if shown is None else logger.info)
    if shown is not None:
        on_record = _with_bar(on_record, shown, names)
    evaluator = PlanEvaluator(spec, spec.cache_dir or "", ExecutorConfig(workers=n_workers), on_record=on_record)
    plans = lineup.plans
    try:
        return dict(zip([p.key() for p in plans], evaluator(plans), strict=True))
    finally:
        if shown is not None:
            shown.close()


def _with_bar(on_record: Callable[[EvaluationRecord], None], bar: Any,
              names: dict[str, str]) -> Callable[[EvaluationRecord], None]:
    """``on_record``, then one step of ``bar`` showing the plan's name and how it went."""

    def step(record: EvaluationRecord) -> None:
        on_record(record)
        how = "cached" if record.cache_hit else record.status if not record.ok else f"{record.seconds:.1f}s"
        bar.set_postfix_str(f"{names.get(record.plan_key, '?')}: {record.label}: {how}")
        bar.update(1)

    return step


def _model_results(spec: EvaluationSpec, lineup: _Lineup, records: dict[str, EvaluationRecord],
                   notes: list[str]) -> list[ModelResult]:
    """Each model's metrics, and its paired claims against its reference (a note when they cannot be made)."""
    labels = load_resources(spec).clean.labels
    outcomes: dict[str, Any] = {}

    def outcomes_of(key: str) -> Any:
        if key not in outcomes:
            record = records[key]
            try:
                outcomes[key] = record.outcomes(spec.corruptions, spec.severities) if record.ok else None
            except ConfigError as exc:
                notes.append(str(exc))
                outcomes[key] = None
        return outcomes[key]

    models = []
    for name, role, plan, ref_key in lineup.rows:
        record = records[plan.key()]
        metrics: dict[str, Any] = {}
        claims = None
        if record.ok:
            reference = record if ref_key is None else records[ref_key]
            metrics = record_metrics(record, reference if reference.ok else None,
                                     spec.corruptions, spec.severities)
            if ref_key is None:  # a reference has no delta (the paired claims give the others theirs)
                metrics.pop("clean_delta", None)
            mine = outcomes_of(plan.key())
            theirs = None if ref_key is None else outcomes_of(ref_key)
            if mine is not None and theirs is not None:
                claims = PairedClaims.from_claims(plan_claims(mine, theirs, labels, level=LEVEL))
        models.append(ModelResult(name, role, plan, label=record.label, status=record.status,
                                  error=record.error, cached=record.cache_hit,
                                  seconds=record.seconds, metrics=metrics, claims=claims,
                                  compared_to=None if ref_key is None else lineup.ref_names[ref_key]))
    return models


def _onnx_check(found: dict[str, Any] | None) -> OnnxCheck | None:
    if found is None:
        return None
    return OnnxCheck(path=found["path"], kind=found["kind"], bytes=found["bytes"],
                     clean_accuracy=found["onnx_accuracy"])


def _with_latency(models: list[ModelResult], spec: EvaluationSpec, lineup: _Lineup, settings: LatencySettings,
                  say: ProgressLine) -> tuple[list[ModelResult], LatencyInfo]:
    """Each plan's deployed latency against its reference's (a :class:`LatencyMeter` per reference:
    measured on this machine, or read from the latency cache of an earlier measurement here)."""
    values: dict[str, dict[str, Any]] = {}
    described: dict[str, Any] = {}
    for ref_key, reference in lineup.references.items():
        meter = LatencyMeter.for_spec(settings, spec, reference, say)
        values.update(meter([plan for _, role, plan, key in lineup.rows if role == "plan" and key == ref_key]))
        described = meter.describe()
        values[ref_key] = {"latency_ms": described["reference_ms"], "latency_low_ms": described["reference_low_ms"],
                           "latency_high_ms": described["reference_high_ms"],
                           "latency_batch_ms": described["reference_batch_ms"]}
    models = [dataclasses.replace(m, latency=Latency.from_fields(values[m.plan_key])) if m.plan_key in values else m
              for m in models]
    info = LatencyInfo(**{k: described[k] for k in ("runtime_name", "hardware", "rounds", "batch_size", "threads")})
    return models, info


def _recovery_text(recovery: RecoveryConfig) -> str:
    return ", ".join(f"{k}={v}" for k, v in recovery.to_dict().items()) or "none"


def _calibration(settings: SearchSettings, plans: Sequence[CompressionPlan]) -> int:
    """Calibration images, chosen as the search chooses them so that a run's cached evaluations are reused."""
    if not any(p.needs_calibration for p in plans):
        return 0
    return calibration_size(settings.target.calibration_images, max(p.recovery.images_needed for p in plans))


def _fit_to_split(spec: EvaluationSpec) -> tuple[EvaluationSpec, int, str | None]:
    """The spec with at most the images per class its split holds, the images per (corruption, severity)
    that gives, and a note when the count asked for had to be capped."""
    labels = dataset_labels(spec.dataset, "test", data_root=spec.data_root, cache_dir=spec.cache_dir)
    _, counts = np.unique(labels[split_indices(labels, spec.split, seed=spec.split_seed)],
                          return_counts=True)
    smallest = int(counts.min())
    if spec.n_per_class is None:
        return spec, int(counts.sum()), None
    if spec.n_per_class <= smallest:
        return spec, spec.n_per_class * counts.size, None
    note = (f"the {spec.split} split holds {smallest} images of its smallest class, fewer than the "
            f"{spec.n_per_class} per class asked for: {smallest} per class are used")
    return spec.with_fidelity(smallest), smallest * counts.size, note


def onnx_paths(arch: str, plans: Sequence[tuple[str, CompressionPlan]], target: Path) -> dict[str, Path]:
    """Plan key -> the ONNX file to write: ``target`` itself when it ends in ``.onnx``, else a file per plan in it.

    Raises:
        ConfigError: when ``target`` names one file but several plans are selected.
    """
    if target.suffix.lower() == ".onnx":
        if len(plans) != 1:
            raise ConfigError(f"--export-onnx {target} names one file but {len(plans)} plans are selected; give a "
                              "folder (each plan gets <arch>-<label>-<key>.onnx there)")
        return {plans[0][1].key(): target}
    return {plan.key(): target / plan_file_name(arch, plan, ".onnx") for _, plan in plans}


def _export(spec: EvaluationSpec, plans: list[tuple[str, CompressionPlan]],
            folder: Path) -> tuple[int, dict[str, ExportResult]]:
    """Writes each plan's compressed model into ``folder``; the fp32 state_dict's bytes, and plan key ->
    what was written."""
    res = load_resources(spec)
    dense = len(state_dict_bytes(res.pretrained.model))
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for _, plan in plans:
        model = compress(res.pretrained.model, plan, calibration=res.calibration)
        path = folder / plan_file_name(spec.arch, plan, ".mcpk")
        out[plan.key()] = export_compressed(model, path, arch=spec.arch)
    return dense, out
