"""Re-evaluating compression plans at full fidelity, from a search run or given on the command line.

Used by ``python -m moo_compress.evaluate --run DIR --select knee|pareto|METHOD|ROW... [--plan JSON]
[--export DIR]`` and, through :func:`reevaluate_run`, by ``notebooks/explore_fronts.ipynb``.
Evaluations go through the same cache as the search (the run's cache context when the fidelity and
precision match), so asking twice costs nothing.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from moo_compress.compress import (
    ClusterConfig,
    CompressionPlan,
    PruneConfig,
    QuantizeConfig,
    RecoveryConfig,
    compress,
)
from moo_compress.compress.export import ExportResult, export_compressed
from moo_compress.compress.size import state_dict_bytes
from moo_compress.data.corruptions import BENCHMARK_CORRUPTIONS
from moo_compress.errors import ConfigError
from moo_compress.report.rundata import RunData, load_run
from moo_compress.search.candidate import load_resources
from moo_compress.search.objectives import record_metrics
from moo_compress.search.problem import PlanEvaluator
from moo_compress.search.run import build_spec
from moo_compress.search.settings import SearchSettings

__all__ = ["parse_plan", "select_plans", "images_option", "reevaluate_run", "format_results", "reevaluate_from_args"]

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


def _run_settings(run: RunData, overrides: dict[str, Any]) -> SearchSettings:
    settings = SearchSettings.from_dict(run.config["settings"])
    info = run.config["run"]
    return dataclasses.replace(settings, arch=info["arch"], weights=info["weights"],
                               **{k: v for k, v in overrides.items() if v is not None})


def reevaluate_run(run: RunData | str | os.PathLike[str], select: Sequence[str | int] = ("knee",), *,
                   images: int | str = "all", export_dir: str | os.PathLike[str] | None = None,
                   device: str | None = None, precision: str | None = None, batch_size: int | None = None,
                   cache_dir: str | os.PathLike[str] | None = None) -> pd.DataFrame:
    """Re-evaluates plans of a search run, and the uncompressed baseline, through the evaluation cache.

    The model, data, corruptions and severities come from the run's ``config.yaml``; only the
    fidelity changes (``images`` per (corruption, severity), ``"all"`` = the whole test set, the
    default). Asking again for the same plans at the same fidelity reads them from the cache.

    Args:
        run: The run (or its folder).
        select: Which plans; see :func:`select_plans`.
        images: Images for clean accuracy and for every (corruption, severity), or ``"all"``.
        export_dir: When given, each selected plan's compressed model is written there as a packed
            file (``<arch>-<label>-<key>.mcpk``).
        device: Overrides the run's device (``cpu``, ``cuda``, ``auto``).
        precision: Overrides the run's precision (``fp32``, ``bf16``).
        batch_size: Overrides the run's batch size.
        cache_dir: Overrides the run's cache root.

    Returns:
        One row per plan, the baseline first: ``name`` (how it was selected), ``label``,
        ``plan_key``, ``status``, ``error``, ``cached``, the metrics (accuracies in percent,
        ``family/*`` and ``acc/*`` per corruption family and corruption), and, when exporting,
        ``export`` (the file), ``export_bytes`` and ``export_gzip_bytes``. ``attrs["fidelity"]``
        says how many images were used.

    Raises:
        MooCompressError: for a missing run, an unknown selection, or missing data or weights.
    """
    run = run if isinstance(run, RunData) else load_run(run)
    settings = _run_settings(run, {"device": device, "batch_size": batch_size, "precision": precision,
                                   "cache_dir": None if cache_dir is None else str(cache_dir)})
    info = run.config["run"]
    return _evaluate(settings, select_plans(run, list(select)), corruptions=tuple(info["corruptions"]),
                     severities=tuple(info["severities"]), images=images_option(images), export_dir=export_dir)


def _evaluate(settings: SearchSettings, plans: list[tuple[str, CompressionPlan]], *, corruptions: tuple[str, ...],
              severities: tuple[int, ...], images: int | str,
              export_dir: str | os.PathLike[str] | None) -> pd.DataFrame:
    calibration = max([p.recovery.bn_images for _, p in plans] + [0])
    if any(p.recovery.finetune_steps or _activation_bits(p) for _, p in plans):
        calibration = max(calibration, int(settings.calibration_images or 512))
    spec = build_spec(settings, corruptions=corruptions, severities=severities, n_images=images,
                      calibration_images=calibration).resolved()
    evaluator = PlanEvaluator(spec, spec.cache_dir or "")
    named = [("baseline", CompressionPlan())] + plans
    records = evaluator([p for _, p in named])
    baseline = records[0]
    rows = []
    for (name, plan), record in zip(named, records):
        row: dict[str, Any] = {"name": name, "label": record.get("label", plan.label()), "plan_key": plan.key(),
                               "status": record["status"], "error": record.get("error"),
                               "cached": bool(record.get("cache_hit"))}
        if record["status"] == "ok" and baseline["status"] == "ok":
            row.update(record_metrics(record, baseline, spec.corruptions, spec.severities))
        rows.append(row)
    frame = pd.DataFrame(rows)
    for column in ("clean_accuracy", "mean_corruption_accuracy", "mce", "relative_mce", "compression_ratio"):
        if column not in frame:
            frame[column] = float("nan")
    if export_dir is not None:
        dense, exported = _export(spec, plans, Path(export_dir))
        frame.attrs["dense_bytes"] = dense
        frame["export"] = [str(exported[k].path) if k in exported else None for k in frame["plan_key"]]
        frame["export_bytes"] = [exported[k].bytes if k in exported else None for k in frame["plan_key"]]
        frame["export_gzip_bytes"] = [exported[k].gzip_bytes if k in exported else None for k in frame["plan_key"]]
    n = "every test image" if spec.n_per_class is None else f"{spec.n_per_class} images per class"
    frame.attrs["fidelity"] = (f"{spec.arch} on {spec.dataset}: {n} for clean accuracy and each of "
                               f"{len(spec.corruptions) * len(spec.severities)} (corruption, severity) pairs, "
                               f"{spec.precision}")
    return frame


def format_results(frame: pd.DataFrame) -> str:
    """The plain-text table ``python -m moo_compress.evaluate`` prints for :func:`reevaluate_run` results."""
    lines = [frame.attrs.get("fidelity", "")]
    header = f"{'plan':<28} {'label':<26} {'clean %':>8} {'mCA %':>7} {'mCE':>6} {'ratio':>7} {'cached':>6}"
    lines += [header, "-" * len(header)]
    for _, r in frame.iterrows():
        if r["status"] != "ok":
            lines.append(f"{r['name']:<28} {str(r['label'])[:26]:<26} failed: {r['error']}")
            continue
        lines.append(f"{r['name']:<28} {str(r['label'])[:26]:<26} {r['clean_accuracy']:8.2f} "
                     f"{r['mean_corruption_accuracy']:7.2f} {r['mce']:6.1f} {r['compression_ratio']:7.2f} "
                     f"{'yes' if r['cached'] else 'no':>6}")
    if "export" in frame:
        exported = frame[frame["export"].notna()]
        dense = frame.attrs.get("dense_bytes") or 0
        if len(exported):
            lines.append(f"\nexported to {Path(exported['export'].iloc[0]).parent}/ (fp32 state_dict: {dense:,} bytes)")
        for _, r in exported.iterrows():
            size, gz = int(r["export_bytes"]), int(r["export_gzip_bytes"])
            lines.append(f"  {Path(r['export']).name}: {size:,} bytes ({dense / size:.1f}x smaller), gzip {gz:,} bytes "
                         f"({dense / gz:.1f}x)")
    return "\n".join(lines)


def reevaluate_from_args(args: argparse.Namespace) -> int:
    """Runs the re-evaluation described by parsed ``evaluate`` arguments; prints a table."""
    plans: list[tuple[str, CompressionPlan]] = []
    overrides: dict[str, Any] = {"device": args.device, "batch_size": args.batch_size, "cache_dir": args.cache_dir,
                                 "precision": args.precision}
    if args.run:
        run = load_run(args.run)
        settings = _run_settings(run, overrides)
        corruptions, severities = tuple(run.info["corruptions"]), tuple(run.info["severities"])
        plans += select_plans(run, args.select or ["knee"])
    else:
        if args.arch is None:
            raise ConfigError("--plan without --run needs --arch (and --weights unless found by name)")
        settings = SearchSettings(arch=args.arch, dataset=args.dataset, weights=args.weights,
                                  weights_dir=args.weights_dir, data_root=args.data_root,
                                  **{k: v for k, v in overrides.items() if v is not None})
        corruptions, severities = BENCHMARK_CORRUPTIONS, (1, 2, 3, 4, 5)
    plans += [(f"--plan {i}", parse_plan(text)) for i, text in enumerate(args.plan or [])]
    frame = _evaluate(settings, plans, corruptions=corruptions, severities=severities,
                      images=images_option(args.images), export_dir=args.export)
    print(format_results(frame))
    return 0


def _activation_bits(plan: CompressionPlan) -> bool:
    qs = [plan.quantize] + [g.quantize for g in plan.groups]
    return any(q is not None and q.activation_bits for q in qs)


def _export(spec: Any, plans: list[tuple[str, CompressionPlan]], folder: Path) -> tuple[int, dict[str, ExportResult]]:
    """Writes each plan's compressed model into ``folder``; the fp32 state_dict's bytes, and plan key ->
    what was written."""
    res = load_resources(spec)
    dense = len(state_dict_bytes(res.pretrained.model))
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for _, plan in plans:
        model = compress(res.pretrained.model, plan, calibration=res.calibration)
        path = folder / f"{spec.arch}-{plan.label().replace(' ', '_')}-{plan.key()[:8]}.mcpk"
        out[plan.key()] = export_compressed(model, path, arch=spec.arch)
    return dense, out
