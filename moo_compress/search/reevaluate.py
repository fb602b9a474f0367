"""Re-evaluating compression plans on more images, from a search run or given on the command line.

Used by ``python -m moo_compress.evaluate --run DIR --select knee|pareto|METHOD|ROW... [--plan JSON]
[--split report|search|all] [--images N|all] [--export DIR] [--export-onnx PATH]`` and, through :func:`reevaluate_run`, by
``notebooks/explore_fronts.ipynb``.

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
nothing, and a line per plan shows the progress.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from moo_compress.compress import (
    ClusterConfig,
    CompressionPlan,
    PruneConfig,
    QuantizeConfig,
    RecoveryConfig,
    compress,
)
from moo_compress.compress.calibration import calibration_size
from moo_compress.compress.export import ExportResult, export_compressed
from moo_compress.compress.size import state_dict_bytes
from moo_compress.data import dataset_labels, split_indices
from moo_compress.runfolder import METRIC_COLUMNS
from moo_compress.data.corruptions import BENCHMARK_CORRUPTIONS
from moo_compress.errors import ConfigError
from moo_compress.report.rundata import RunData, load_run
from moo_compress.search.cache import EvaluationCache
from moo_compress.search.candidate import EvaluationSpec, load_resources
from moo_compress.search.claims import LEVEL, plan_claims, record_outcomes
from moo_compress.search.executors import ExecutorConfig, default_workers
from moo_compress.search.final import export_and_check, plan_file_name
from moo_compress.search.latency import LATENCY_FIELDS, LatencyMeter, LatencySettings, speedup_verdict
from moo_compress.search.objectives import record_metrics
from moo_compress.search.problem import PlanEvaluator
from moo_compress.search.run import build_spec
from moo_compress.search.settings import DEFAULTS, FLAT_NAMES, ExecutionSettings, SearchSettings, TargetSettings
from moo_compress.evaluation.stats import Interval

__all__ = ["DEFAULT_IMAGES", "SPLIT_CHOICES", "SelectionBiasWarning", "parse_plan", "select_plans", "images_option",
           "split_option", "selection_warning", "reevaluate_run", "format_results", "reevaluate_from_args",
           "run_latency"]

#: Default images per (corruption, severity) of a re-evaluation: minutes on a 2-core CPU for ResNet-20 and
#: VGG-19 (clean accuracy uses every image of the split). ``"all"`` (full fidelity) is an explicit choice.
DEFAULT_IMAGES = 500
#: Parts of the test set a re-evaluation can use (:func:`~moo_compress.data.split_indices`).
SPLIT_CHOICES = ("report", "search", "all")
#: Paired claims of every plan against its reference: columns ``<name>``, ``<name>_low``, ``<name>_high``.
_INTERVALS = ("clean_delta", "mca_delta", "mce", "relative_mce", "worst_class_delta", "worst_corruption_delta")


class SelectionBiasWarning(UserWarning):
    """A run's plans are re-evaluated on images that took part in selecting them: the numbers are optimistic."""

_SHORTHAND = ("sparsity", "clusters", "bits", "weight_bits", "activation_bits", "bn_images", "scope",
              "exclude_first_conv", "exclude_classifier")


def parse_plan(text: str) -> CompressionPlan:
    """A plan from JSON: the shorthand ``{"sparsity": 0.5, "clusters": 16, "bits": 8, "bn_images": 512}``
    (any subset of those keys, plus ``activation_bits``, ``scope``, ``exclude_first_conv``,
    ``exclude_classifier``) or a full :class:`CompressionPlan` dict.

    Raises:
        ConfigError: for invalid JSON, unknown keys or invalid values.
    """
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"--plan is not valid JSON ({exc}): {text!r}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"--plan must be a JSON object, got {text!r}")
    plan_fields = {f.name for f in dataclasses.fields(CompressionPlan)}
    if set(data) <= plan_fields and not set(data) & {"sparsity", "clusters", "bits"}:
        return CompressionPlan.from_dict(data)
    unknown = set(data) - set(_SHORTHAND)
    if unknown:
        raise ConfigError(f"--plan has unknown keys {sorted(unknown)}: use {', '.join(_SHORTHAND)} or a full "
                          "CompressionPlan JSON")
    bits = data.get("bits", data.get("weight_bits"))
    sparsity = data.get("sparsity") or 0
    return CompressionPlan(
        prune=PruneConfig(sparsity, scope=data.get("scope", "global")) if sparsity else None,
        cluster=ClusterConfig(data["clusters"]) if data.get("clusters") else None,
        quantize=QuantizeConfig(bits, activation_bits=data.get("activation_bits"))
        if bits and bits != 32 else None,
        recovery=RecoveryConfig(bn_images=data.get("bn_images", 0)),
        exclude_first_conv=data.get("exclude_first_conv", False),
        exclude_classifier=data.get("exclude_classifier", False),
    )


def select_plans(run: RunData, which: Sequence[str | int]) -> list[tuple[str, CompressionPlan]]:
    """``(name, plan)`` of the plans of ``run`` named by ``which``, each plan once.

    Args:
        run: The run.
        which: ``"knee"`` (every recommendation), ``"pareto"`` (the whole front), a recommendation
            method of ``knees.json`` (``"nbi_knee"``, ``"most_robust_min_ratio"``, ...) or a row
            number of ``pareto.csv`` (an int or its digits).

    Raises:
        ConfigError: for an unknown name, a row outside the front, or no recommendation.
    """
    out: dict[str, tuple[str, CompressionPlan]] = {}
    methods = {r["method"]: r for r in run.recommendations if r.get("plan")}
    for item in which:
        text = str(item).strip()
        if text == "knee":
            if not methods:
                raise ConfigError(f"{run.path} has no recommendation (no feasible plan); use --select pareto")
            for method, r in methods.items():
                plan = CompressionPlan.from_dict(r["plan"])
                out.setdefault(plan.key(), (method, plan))
        elif text == "pareto":
            for i, r in run.pareto.iterrows():
                plan = CompressionPlan.from_dict(r["plan"])
                out.setdefault(plan.key(), (f"row {i}", plan))
        elif text in methods:
            plan = CompressionPlan.from_dict(methods[text]["plan"])
            out.setdefault(plan.key(), (text, plan))
        elif text in {r["method"] for r in run.recommendations}:
            raise ConfigError(f"the recommendation {text!r} found no plan in {run.path}; pick one of "
                              f"{', '.join(methods) or '(none)'} or a row number of pareto.csv")
        else:
            try:
                row = int(text)
            except ValueError:
                known = ", ".join(["knee", "pareto", *methods])
                raise ConfigError(f"cannot select {text!r}: use {known} or a row number of pareto.csv") from None
            if not 0 <= row < len(run.pareto):
                raise ConfigError(f"row {row} is not on the front: pareto.csv of {run.path} has rows "
                                  f"0-{len(run.pareto) - 1}" if len(run.pareto) else f"{run.path} has an empty front")
            plan = CompressionPlan.from_dict(run.pareto.iloc[row]["plan"])
            out.setdefault(plan.key(), (f"row {row}", plan))
    return list(out.values())


def images_option(value: int | str) -> int | str:
    """``value`` as an image count or ``"all"``.

    Raises:
        ConfigError: for anything else, or a count below 1.
    """
    if value == "all":
        return "all"
    try:
        count = int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"images must be an integer or 'all', got {value!r}") from None
    if count < 1:
        raise ConfigError(f"images must be positive, got {count}")
    return count


def split_option(value: str | None, *, run: bool) -> str:
    """The part of the test set a re-evaluation uses: ``value``, else ``report`` for the plans of a run
    and ``all`` for plans given without a run (no selection happened).

    Raises:
        ConfigError: for a value outside :data:`SPLIT_CHOICES`.
    """
    if value is None:
        return "report" if run else "all"
    if value not in SPLIT_CHOICES:
        raise ConfigError(f"split must be one of {', '.join(SPLIT_CHOICES)}, got {value!r}")
    return value


def selection_warning(split: str, run: RunData | None) -> str | None:
    """Why re-evaluating ``run``'s plans on ``split`` gives optimistic numbers, or None when it does not."""
    if run is None:
        return None
    if split == "search":
        return ("split 'search' holds the images the search screened and selected these plans on, so their numbers "
                "are optimistic (selection bias); the report split, the default, was never used to choose them")
    if split == "all":
        return ("split 'all' includes the search split, whose images screened and selected these plans, so their "
                "numbers are optimistic (selection bias); the report split, the default, was never used to choose them")
    if not run.info.get("split"):
        return ("this run predates the search/report split: it selected its plans on images drawn from the whole test "
                "set, which the report split overlaps, so the numbers may be optimistic")
    return None


def _run_settings(run: RunData, overrides: dict[str, Any]) -> SearchSettings:
    """The run's settings (model, data, precision, split seed, threads), with the execution ``overrides``
    that are not None."""
    data = {k: v for k, v in run.settings.items() if k in FLAT_NAMES}  # any format version; old keys dropped
    info = run.config["run"]
    data.setdefault("split_seed", int((info.get("split") or {}).get("seed", 0)))  # older runs: seed 0
    data.update(arch=info["arch"], weights=info["weights"])
    settings = SearchSettings.from_dict(data)
    threads = settings.execution.threads or DEFAULTS["execution"]["threads"]
    return settings.replace(execution={"threads": threads, **{k: v for k, v in overrides.items() if v is not None}})


def reevaluate_run(run: RunData | str | os.PathLike[str], select: Sequence[str | int] = ("knee",), *,
                   images: int | str = DEFAULT_IMAGES, split: str = "report",
                   plans: Sequence[CompressionPlan | str] = (), export_dir: str | os.PathLike[str] | None = None,
                   onnx_export: str | os.PathLike[str] | None = None, latency: bool = False,
                   device: str | None = None, precision: str | None = None, batch_size: int | None = None,
                   cache_dir: str | os.PathLike[str] | None = None, workers: int | None = None,
                   progress: bool | Callable[[str], None] = True) -> pd.DataFrame:
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
        onnx_export: When given, each selected plan's compressed model is also written as an ONNX file
            for ONNX Runtime (:func:`~moo_compress.compress.export_onnx`): this file when it ends in
            ``.onnx`` (one plan only), else into this folder (``<arch>-<label>-<key>.onnx``); its clean
            accuracy in ONNX Runtime on the split is measured beside PyTorch's.
        latency: Also time each plan's deployed form against its reference's on this machine
            (:func:`run_latency`): the run's latency settings when it measured latency, else the defaults
            of :class:`~moo_compress.search.latency.LatencySettings` (ONNX Runtime, 1 thread, 100 rounds).
        export_dir: When given, each selected plan's compressed model is written there as a packed
            file (``<arch>-<label>-<key>.mcpk``).
        device: Overrides the run's device (``cpu``, ``cuda``, ``auto``).
        precision: Overrides the run's precision (``fp32``, ``bf16``).
        batch_size: Overrides the run's batch size.
        cache_dir: Overrides the run's cache root.
        workers: Processes evaluating plans not yet cached (default: one per ``threads`` CPU cores, or
            per GPU; serial when at most one plan is missing).
        progress: Print a line per plan evaluated (done/total, name, label, seconds); a callable
            receives the lines instead, False is silent.

    Returns:
        One row per evaluated model, the reference(s) first, then ``original`` (left out when it is the
        reference: plans without recovery), then the plans. Columns: ``name``, ``role``
        (``reference``, ``original`` or ``plan``), ``label``, ``plan_key``, ``status``, ``error``,
        ``cached``, ``seconds``, ``compared_to`` (the row the deltas are against), the metrics
        (accuracies in percent; ``mce`` and ``relative_mce`` against the reference; ``family/*`` and
        ``acc/*`` per corruption family and corruption), the paired claims against the reference
        (``clean_delta``, ``mca_delta``, ``worst_class_delta``, ``worst_corruption_delta`` in points,
        ``mce``, ``relative_mce``, each with ``_low`` and ``_high``: 95% intervals over images;
        ``worst_class``, ``worst_corruption``, ``changed_predictions``, ``n_clean``, ``n_corrupted``)
        and, when exporting, ``export`` (the file), ``export_bytes`` and ``export_gzip_bytes``;
        ``onnx``, ``onnx_kind`` (``float`` or ``qdq``), ``onnx_bytes`` and ``onnx_clean_accuracy``;
        with ``latency``, the ``latency_*`` columns (:data:`~moo_compress.search.latency.LATENCY_FIELDS`,
        the reference rows their own batch-1 and batch latency) and ``latency_error``.
        ``attrs`` hold ``fidelity`` (the images used, in words), ``split``, ``split_seed``,
        ``n_clean``, ``n_corrupted`` (per pair), ``pairs``, ``level``, ``warning`` and ``notes``.

    Raises:
        MooCompressError: for a missing run, an unknown selection or split, or missing data or weights.
    """
    run = run if isinstance(run, RunData) else load_run(run)
    split = split_option(split, run=True)
    settings = _run_settings(run, {"device": device, "batch_size": batch_size, "precision": precision,
                                   "cache_dir": None if cache_dir is None else str(cache_dir)})
    chosen = select_plans(run, list(select))
    chosen += [(f"plan {i}", p if isinstance(p, CompressionPlan) else parse_plan(p)) for i, p in enumerate(plans)]
    warning = selection_warning(split, run)
    if warning:
        warnings.warn(warning, SelectionBiasWarning, stacklevel=2)
    info = run.config["run"]
    return _reevaluate(settings, chosen, corruptions=tuple(info["corruptions"]), severities=tuple(info["severities"]),
                       corruption_params=info.get("corruption_params"), images=images_option(images), split=split,
                       export_dir=export_dir, onnx_export=onnx_export, workers=workers, log=_logger(progress),
                       warning=warning, latency=run_latency(run) if latency else None)


def _logger(progress: bool | Callable[[str], None]) -> Callable[[str], None]:
    if callable(progress):
        return progress
    if progress:
        return lambda line: print(line, flush=True)
    return lambda line: None


def _recovery_text(recovery: RecoveryConfig) -> str:
    return ", ".join(f"{k}={v}" for k, v in recovery.to_dict().items()) or "none"


def _calibration(settings: SearchSettings, plans: Sequence[CompressionPlan]) -> int:
    """Calibration images, chosen as the search chooses them so that a run's cached evaluations are reused."""
    bn = max([p.recovery.bn_images for p in plans] + [0])
    other = any(p.recovery.finetune_steps or _activation_bits(p) for p in plans)
    if not bn and not other:
        return 0
    return calibration_size(settings.target.calibration_images, bn)


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


class _Progress:
    """A line per plan evaluated: done/total, name, label, and how long it took (or that it was cached)."""

    def __init__(self, names: dict[str, str], log: Callable[[str], None]) -> None:
        self.names = names
        self.log = log
        self.done = 0
        self.started = time.perf_counter()

    def __call__(self, record: dict[str, Any]) -> None:
        self.done += 1
        seconds = float(record.get("seconds") or 0.0)
        if record.get("cache_hit"):
            how = "cached"
        elif record.get("status") == "ok":
            how = f"{seconds:.1f}s"
        else:
            how = f"failed after {seconds:.1f}s: {record.get('error')}"
        minutes, seconds_left = divmod(round(time.perf_counter() - self.started), 60)
        elapsed = f"{minutes}m{seconds_left:02d}s" if minutes else f"{seconds_left}s"
        self.log(f"  [{self.done}/{len(self.names)}] {self.names.get(record.get('plan_key', ''), '?')}: "
                 f"{record.get('label', '')}: {how} ({elapsed} elapsed)")


def _reevaluate(settings: SearchSettings, plans: list[tuple[str, CompressionPlan]], *, corruptions: tuple[str, ...],
                severities: tuple[int, ...], images: int | str, split: str, corruption_params: str | None = None,
                export_dir: str | os.PathLike[str] | None, workers: int | None, log: Callable[[str], None],
                warning: str | None = None, onnx_export: str | os.PathLike[str] | None = None,
                latency: LatencySettings | None = None) -> pd.DataFrame:
    """Evaluates ``plans``, their reference(s) and the original model on the same images of ``split``."""
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise ConfigError(f"workers must be a positive integer, got {workers!r}")
    references: dict[str, CompressionPlan] = {}
    for _, plan in plans:
        reference = CompressionPlan(recovery=plan.recovery)
        references.setdefault(reference.key(), reference)
    original = CompressionPlan()
    if not references:
        references[original.key()] = original
    ref_names = {key: "reference" if len(references) == 1 else f"reference ({_recovery_text(p.recovery)})"
                 for key, p in references.items()}
    first_ref = next(iter(references))
    rows: list[tuple[str, str, CompressionPlan, str | None]] = [  # name, role, plan, key of its reference
        (ref_names[key], "reference", plan, None) for key, plan in references.items()]
    notes = []
    if original.key() in references:
        notes.append("the plans have no recovery step, so their reference is the original model")
    else:
        rows.append(("original", "original", original, first_ref))
    rows += [(name, "plan", plan, CompressionPlan(recovery=plan.recovery).key()) for name, plan in plans]

    all_plans = [plan for _, _, plan, _ in rows]
    spec = build_spec(settings, corruptions=corruptions, severities=severities, n_images=images,
                      calibration_images=_calibration(settings, all_plans), split=split, clean_whole_split=True,
                      corruption_params=corruption_params)
    spec, per_pair, capped = _fit_to_split(spec)
    onnx_files = None if onnx_export is None else _onnx_paths(spec.arch, plans, Path(onnx_export))  # fails early
    if capped:
        notes.append(capped)
    recovery = "; ".join(_recovery_text(p.recovery) for p in references.values())
    names: dict[str, str] = {}
    for name, _, plan, _ in rows:
        names.setdefault(plan.key(), name)
    where = "the whole test set" if split == "all" else f"the {split} split"
    models = f"the reference (the uncompressed model after the plans' recovery: {recovery})"
    models += " and the original model" if original.key() not in references else ""
    log(f"re-evaluating {len(plans)} plan(s), {models} on {where} of {spec.dataset}: {per_pair:,} images per "
        f"(corruption, severity) x {len(spec.corruptions) * len(spec.severities)} pairs, every image of the split for "
        f"clean accuracy, {spec.precision} ...")
    spec = spec.resolved()
    res = load_resources(spec)
    context = spec.context_key()
    cache = EvaluationCache(spec.cache_dir or "")
    missing = sum(cache.get(context, key) is None for key in names)
    n_workers = max(1, min(workers or default_workers(spec.device, spec.threads), missing))
    log(f"{len(names) - missing} of {len(names)} evaluation(s) cached, {missing} to compute"
        + (f" in {n_workers} processes" if n_workers > 1 else ""))
    evaluator = PlanEvaluator(spec, spec.cache_dir or "", ExecutorConfig(workers=n_workers),
                              on_record=_Progress(names, log))
    records = dict(zip([p.key() for p in all_plans], evaluator(all_plans)))

    outcomes: dict[str, Any] = {}

    def outcomes_of(key: str) -> Any:
        if key not in outcomes:
            record = records[key]
            try:
                outcomes[key] = record_outcomes(record, spec.corruptions, spec.severities) \
                    if record["status"] == "ok" else None
            except ConfigError as exc:
                notes.append(str(exc))
                outcomes[key] = None
        return outcomes[key]

    table = []
    for name, role, plan, ref_key in rows:
        record = records[plan.key()]
        row: dict[str, Any] = {"name": name, "role": role, "label": record.get("label", plan.label()),
                               "plan_key": plan.key(), "status": record["status"], "error": record.get("error"),
                               "cached": bool(record.get("cache_hit")), "seconds": record.get("seconds"),
                               "compared_to": None if ref_key is None else ref_names[ref_key]}
        if record["status"] == "ok":
            reference = record if ref_key is None else records[ref_key]
            metrics = record_metrics(record, reference if reference["status"] == "ok" else None,
                                     spec.corruptions, spec.severities)
            if ref_key is None:  # a reference has no delta (the paired claims below give the others theirs)
                metrics.pop("clean_delta", None)
            row.update(metrics)
            mine = outcomes_of(plan.key())
            theirs = None if ref_key is None else outcomes_of(ref_key)
            if mine is not None and theirs is not None:
                row.update(_claim_columns(plan_claims(mine, theirs, res.clean.labels, level=LEVEL)))
        table.append(row)
    frame = pd.DataFrame(table)
    for column in (*METRIC_COLUMNS, *(f"{n}{s}" for n in _INTERVALS for s in ("", "_low", "_high"))):
        if column not in frame:
            frame[column] = float("nan")
    if export_dir is not None:
        dense, exported = _export(spec, plans, Path(export_dir))
        frame.attrs["dense_bytes"] = dense
        is_plan = frame["role"] == "plan"
        for column, value in (("export", lambda e: str(e.path)), ("export_bytes", lambda e: e.bytes),
                              ("export_gzip_bytes", lambda e: e.gzip_bytes)):
            frame[column] = [value(exported[k]) if p and k in exported else None
                             for k, p in zip(frame["plan_key"], is_plan)]
    if onnx_files is not None:
        onnx = export_and_check(spec, [plan for _, plan in plans], onnx_files, log)
        is_plan = frame["role"] == "plan"
        for column, field in (("onnx", "path"), ("onnx_kind", "kind"), ("onnx_bytes", "bytes"),
                              ("onnx_clean_accuracy", "onnx_accuracy")):
            frame[column] = [onnx[k][field] if p and k in onnx else None for k, p in zip(frame["plan_key"], is_plan)]
    if latency is not None:
        _add_latency(frame, spec, references, rows, latency, log)
    n_clean, n_corrupted, pairs = len(res.clean), len(res.corrupted), len(spec.corruptions) * len(spec.severities)
    where = "the whole test set" if split == "all" else f"the {split} split (split seed {spec.split_seed})"
    if split == "report" and warning is None:
        where += ", images the search never used to choose the plans"
    frame.attrs.update(
        fidelity=(f"{spec.arch} on {spec.dataset}, {where}: clean accuracy on {n_clean:,} images (every image of "
                  f"{'the test set' if split == 'all' else 'the split'}), robustness on {n_corrupted:,} images per "
                  f"(corruption, severity) x {pairs} pairs, {spec.precision}"),
        split=split, split_seed=spec.split_seed, n_clean=n_clean, n_corrupted=n_corrupted, pairs=pairs, level=LEVEL,
        warning=warning, notes=notes, references={ref_names[k]: _recovery_text(p.recovery)
                                                  for k, p in references.items()})
    return frame


def _claim_columns(claims: dict[str, Any]) -> dict[str, Any]:
    """The columns of :func:`~moo_compress.search.claims.plan_claims`: every interval as three numbers."""
    out: dict[str, Any] = {}
    for name in _INTERVALS:
        interval = claims[name]
        out.update({name: interval.estimate, f"{name}_low": interval.low, f"{name}_high": interval.high})
    out.update(worst_class=claims["worst_class"], worst_corruption=claims["worst_corruption"],
               changed_predictions=claims["changed"], n_clean=claims["n_clean"], n_corrupted=claims["n_corrupted"])
    return out


def _interval(row: pd.Series, name: str, level: float) -> Interval:
    values = [float(row.get(f"{name}{s}", math.nan)) for s in ("", "_low", "_high")]
    return Interval(*values, level=level, n=0)


def _claims_lines(row: pd.Series, level: float) -> list[str]:
    clean, mca, mce = (_interval(row, n, level).format(1, signed=n != "mce") for n in ("clean_delta", "mca_delta",
                                                                                         "mce"))
    lines = [f"  {row['name']} ({row['label']}) against the {row['compared_to']}:",
             f"      clean {clean} points, mean corruption accuracy {mca} points, mCE {mce}"]
    worst = []
    if pd.notna(row.get("worst_class")):
        worst.append(f"worst class {int(row['worst_class'])}: {_interval(row, 'worst_class_delta', level).format(1)} "
                     "points")
    if isinstance(row.get("worst_corruption"), str):
        worst.append(f"worst corruption {row['worst_corruption']}: "
                     f"{_interval(row, 'worst_corruption_delta', level).format(1)} points")
    if pd.notna(row.get("changed_predictions")):
        worst.append(f"{int(row['changed_predictions']):,} of {int(row['n_clean']):,} clean predictions changed")
    if worst:
        lines.append("      " + "; ".join(worst))
    return lines


def format_results(frame: pd.DataFrame) -> str:
    """The plain-text report ``python -m moo_compress.evaluate`` prints for :func:`reevaluate_run` results:
    the images used, a table of absolute numbers (the reference and the original model first), then each
    plan's deltas against its reference with paired intervals, e.g. ``clean -0.4 [-0.9, +0.1] points``."""
    attrs = frame.attrs
    level = float(attrs.get("level", LEVEL))
    lines = [f"warning: {attrs['warning']}"] if attrs.get("warning") else []
    lines.append(attrs.get("fidelity", ""))
    lines += [f"note: {n}" for n in attrs.get("notes") or []]
    header = f"{'name':<28} {'label':<26} {'clean %':>8} {'mCA %':>7} {'mCE':>6} {'ratio':>7} {'cached':>6}"
    lines += ["", header, "-" * len(header)]
    for _, r in frame.iterrows():
        if r["status"] != "ok":
            lines.append(f"{r['name']:<28} {str(r['label'])[:26]:<26} failed: {r['error']}")
            continue
        lines.append(f"{str(r['name'])[:28]:<28} {str(r['label'])[:26]:<26} {r['clean_accuracy']:8.2f} "
                     f"{r['mean_corruption_accuracy']:7.2f} {r['mce']:6.1f} {r['compression_ratio']:7.2f} "
                     f"{'yes' if r['cached'] else 'no':>6}")
    compared = frame[frame["compared_to"].notna() & (frame["status"] == "ok")] if "compared_to" in frame \
        else frame.iloc[:0]
    if len(compared):
        references = attrs.get("references") or {}
        what = (f"recovery: {next(iter(references.values()))}" if len(references) == 1
                else "; ".join(f"{k}" for k in references))
        lines += ["", f"Against the reference, the uncompressed model after the plans' recovery ({what}), on the same "
                  f"images; paired {level:.0%} intervals:"]
        for _, r in compared.iterrows():
            if pd.isna(r.get("clean_delta_low")):
                lines.append(f"  {r['name']} ({r['label']}): no paired claims (the reference failed or kept no "
                             "per-image outcomes)")
                continue
            lines += _claims_lines(r, level)
        lines.append("The intervals cover the sampling of test images only: not the calibration images, the search's "
                     "seed or another test distribution.")
    if "export" in frame:
        exported = frame[frame["export"].notna()]
        dense = frame.attrs.get("dense_bytes") or 0
        if len(exported):
            lines.append(f"\nexported to {Path(exported['export'].iloc[0]).parent}/ (fp32 state_dict: {dense:,} bytes)")
        for _, r in exported.iterrows():
            size, gz = int(r["export_bytes"]), int(r["export_gzip_bytes"])
            lines.append(f"  {Path(r['export']).name}: {size:,} bytes ({dense / size:.1f}x smaller), gzip {gz:,} bytes "
                         f"({dense / gz:.1f}x)")
    if "onnx" in frame:
        exported = frame[frame["onnx"].notna()]
        if len(exported):
            lines.append("\nONNX files for ONNX Runtime (uint8 NHWC images in, logits out); clean top-1 in ONNX Runtime "
                         "against PyTorch's on the same images:")
        for _, r in exported.iterrows():
            kind = "int8 QDQ" if r["onnx_kind"] == "qdq" else "float weights"
            lines.append(f"  {r['onnx']} ({kind}, {int(r['onnx_bytes']):,} bytes): {r['onnx_clean_accuracy']:.2f}% "
                         f"(PyTorch {r['clean_accuracy']:.2f}%)")
    if frame.attrs.get("latency"):
        lines += _latency_lines(frame)
    return "\n".join(lines)


def reevaluate_from_args(args: argparse.Namespace) -> int:
    """Runs the re-evaluation described by parsed ``evaluate`` arguments; prints progress, then the results."""
    plans: list[tuple[str, CompressionPlan]] = []
    overrides: dict[str, Any] = {"device": args.device, "batch_size": args.batch_size, "cache_dir": args.cache_dir,
                                 "precision": args.precision}
    split = split_option(getattr(args, "split", None), run=bool(args.run))
    warning = None
    if args.run:
        run = load_run(args.run)
        settings = _run_settings(run, overrides)
        corruptions, severities = tuple(run.info["corruptions"]), tuple(run.info["severities"])
        params = run.info.get("corruption_params")
        plans += select_plans(run, args.select or ["knee"])
        warning = selection_warning(split, run)
    else:
        if args.arch is None:
            raise ConfigError("--plan without --run needs --arch (and --weights unless found by name)")
        settings = SearchSettings(
            TargetSettings(args.arch, dataset=args.dataset, weights=args.weights, weights_dir=args.weights_dir,
                           data_root=args.data_root),
            execution=ExecutionSettings(threads=DEFAULTS["execution"]["threads"],
                                        **{k: v for k, v in overrides.items() if v is not None}))
        corruptions, severities, params = BENCHMARK_CORRUPTIONS, (1, 2, 3, 4, 5), None
    plans += [(f"--plan {i}", parse_plan(text)) for i, text in enumerate(args.plan or [])]
    if warning:
        print(f"warning: {warning}", file=sys.stderr, flush=True)
    images = DEFAULT_IMAGES if getattr(args, "images", None) is None else args.images
    frame = _reevaluate(settings, plans, corruptions=corruptions, severities=severities, corruption_params=params,
                        images=images_option(images), split=split, export_dir=args.export,
                        onnx_export=getattr(args, "export_onnx", None),
                        workers=getattr(args, "workers", None), log=lambda line: print(line, flush=True),
                        warning=warning, latency=(run_latency(run if args.run else None)
                                                  if getattr(args, "latency", False) else None))
    print()
    print(format_results(frame))
    return 0


def run_latency(run: RunData | None) -> LatencySettings:
    """How a re-evaluation times plans: as the run did when it measured latency, else the defaults."""
    measured = run.latency_settings if run is not None else {}
    fields = {f.name for f in dataclasses.fields(LatencySettings)}
    return LatencySettings(**{k: v for k, v in measured.items() if k in fields})


def _add_latency(frame: pd.DataFrame, spec: EvaluationSpec, references: dict[str, CompressionPlan],
                 rows: list[tuple[str, str, CompressionPlan, str | None]], settings: LatencySettings,
                 log: Callable[[str], None]) -> None:
    """Adds each plan's deployed latency against its reference's (a :class:`LatencyMeter` per reference:
    measured on this machine, or read from the latency cache of an earlier measurement here)."""
    values: dict[str, dict[str, Any]] = {}
    described: dict[str, Any] = {}
    for ref_key, reference in references.items():
        meter = LatencyMeter.for_spec(settings, spec, reference, log)
        values.update(meter([plan for _, role, plan, key in rows if role == "plan" and key == ref_key]))
        described = meter.describe()
        values[ref_key] = {"latency_ms": described["reference_ms"], "latency_low_ms": described["reference_low_ms"],
                           "latency_high_ms": described["reference_high_ms"],
                           "latency_batch_ms": described["reference_batch_ms"]}
    for column in (*LATENCY_FIELDS, "latency_error"):
        frame[column] = [values.get(key, {}).get(column) for key in frame["plan_key"]]
    frame.attrs["latency"] = {k: described[k] for k in ("runtime_name", "hardware", "rounds", "batch_size", "threads")}


def _latency_lines(frame: pd.DataFrame) -> list[str]:
    info = frame.attrs["latency"]
    lines = [f"\nLatency of the deployed form on this machine ({info['runtime_name']}; {info['hardware']}): batch 1, "
             f"median of {info['rounds']} runs [interquartile range], each run alternating with the reference's; the "
             "speed-up is the median of the per-run ratios:"]
    for _, r in frame[frame["role"] != "original"].iterrows():
        name = f"  {r['name']} ({r['label']})"
        if isinstance(r.get("latency_error"), str):
            lines.append(f"{name}: not measured: {r['latency_error']}")
            continue
        if pd.isna(r.get("latency_ms")):
            continue
        text = f"{name}: {r['latency_ms']:.3g} ms [{r['latency_low_ms']:.3g}, {r['latency_high_ms']:.3g}]"
        if r["role"] == "plan":
            low, high = float(r["latency_speedup_low"]), float(r["latency_speedup_high"])
            text += f", {r['latency_speedup']:.2f}x [{low:.2f}, {high:.2f}]: {speedup_verdict(low, high)}"
        if info["batch_size"] > 1 and pd.notna(r.get("latency_batch_ms")):
            text += f"; batch {info['batch_size']}: {r['latency_batch_ms']:.3g} ms"
            if r["role"] == "plan" and pd.notna(r.get("latency_batch_speedup")):
                text += f" ({r['latency_batch_speedup']:.2f}x)"
        lines.append(text)
    return lines


def _activation_bits(plan: CompressionPlan) -> bool:
    qs = [plan.quantize] + [g.quantize for g in plan.groups]
    return any(q is not None and q.activation_bits for q in qs)


def _onnx_paths(arch: str, plans: list[tuple[str, CompressionPlan]], target: Path) -> dict[str, Path]:
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


def _export(spec: Any, plans: list[tuple[str, CompressionPlan]], folder: Path) -> tuple[int, dict[str, ExportResult]]:
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
