"""Re-evaluating compression plans at full fidelity, from a search run or given on the command line.

Used by ``python -m moo_compress.evaluate --run DIR --select knee|pareto|ROW... [--plan JSON]
[--export DIR]``. Evaluations go through the same cache as the search (the run's cache context when
the fidelity and precision match), so asking twice costs nothing.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path
from typing import Any

from moo_compress.compress import (
    ClusterConfig,
    CompressionPlan,
    PruneConfig,
    QuantizeConfig,
    RecoveryConfig,
    compress,
)
from moo_compress.compress.export import export_compressed
from moo_compress.compress.size import state_dict_bytes
from moo_compress.data.corruptions import BENCHMARK_CORRUPTIONS
from moo_compress.errors import ConfigError
from moo_compress.report.rundata import RunData, load_run
from moo_compress.search.candidate import load_resources
from moo_compress.search.objectives import record_metrics
from moo_compress.search.problem import PlanEvaluator
from moo_compress.search.run import build_spec
from moo_compress.search.settings import SearchSettings

__all__ = ["parse_plan", "select_plans", "reevaluate_from_args"]

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


def select_plans(run: RunData, which: list[str]) -> list[tuple[str, CompressionPlan]]:
    """``(name, plan)`` of the plans of ``run`` named by ``which`` (``knee``, ``pareto``, row numbers)."""
    out: dict[str, tuple[str, CompressionPlan]] = {}
    for item in which:
        if item == "knee":
            recs = [r for r in run.recommendations if r.get("plan")]
            if not recs:
                raise ConfigError(f"{run.path} has no recommendation (no feasible plan); use --select pareto")
            for r in recs:
                plan = CompressionPlan.from_dict(r["plan"])
                out.setdefault(plan.key(), (r["method"], plan))
        elif item == "pareto":
            for i, r in run.pareto.iterrows():
                plan = CompressionPlan.from_dict(r["plan"])
                out.setdefault(plan.key(), (f"row {i}", plan))
        else:
            try:
                row = int(item)
            except ValueError:
                raise ConfigError(f"--select takes 'knee', 'pareto' or row numbers of pareto.csv, got {item!r}") from None
            if not 0 <= row < len(run.pareto):
                raise ConfigError(f"--select {row}: pareto.csv of {run.path} has rows 0-{len(run.pareto) - 1}")
            plan = CompressionPlan.from_dict(run.pareto.iloc[row]["plan"])
            out.setdefault(plan.key(), (f"row {row}", plan))
    return list(out.values())


def _images(text: str) -> int | str:
    if text == "all":
        return "all"
    try:
        value = int(text)
    except ValueError:
        raise ConfigError(f"--images must be an integer or 'all', got {text!r}") from None
    if value < 1:
        raise ConfigError(f"--images must be positive, got {value}")
    return value


def reevaluate_from_args(args: argparse.Namespace) -> int:
    """Runs the re-evaluation described by parsed ``evaluate`` arguments; prints a table."""
    plans: list[tuple[str, CompressionPlan]] = []
    overrides: dict[str, Any] = {"device": args.device, "batch_size": args.batch_size}
    if args.cache_dir:
        overrides["cache_dir"] = args.cache_dir
    if args.run:
        run = load_run(args.run)
        settings = SearchSettings.from_dict(run.config["settings"])
        info = run.config["run"]
        settings = dataclasses.replace(settings, arch=info["arch"], weights=info["weights"], **overrides)
        corruptions, severities = tuple(info["corruptions"]), tuple(info["severities"])
        plans += select_plans(run, args.select or ["knee"])
    else:
        if args.arch is None:
            raise ConfigError("--plan without --run needs --arch (and --weights unless found by name)")
        settings = SearchSettings(arch=args.arch, dataset=args.dataset, weights=args.weights,
                                  weights_dir=args.weights_dir, data_root=args.data_root, **overrides)
        corruptions, severities = BENCHMARK_CORRUPTIONS, (1, 2, 3, 4, 5)
    if args.precision is not None:
        settings = dataclasses.replace(settings, precision=args.precision)
    plans += [(f"--plan {i}", parse_plan(text)) for i, text in enumerate(args.plan or [])]
    calibration = max([p.recovery.bn_images for _, p in plans] + [0])
    if any(p.recovery.finetune_steps or _activation_bits(p) for _, p in plans):
        calibration = max(calibration, int(settings.calibration_images or 512))
    spec = build_spec(settings, corruptions=corruptions, severities=severities, n_images=_images(args.images),
                      calibration_images=calibration).resolved()
    evaluator = PlanEvaluator(spec, spec.cache_dir or "")
    records = evaluator([CompressionPlan()] + [p for _, p in plans])
    baseline = records[0]
    n = "all" if spec.n_per_class is None else spec.n_per_class
    print(f"{spec.arch} on {spec.dataset}: {len(records[0]['corruption_accuracy'])} (corruption, severity) pairs, "
          f"{n} images per class, {spec.precision}")
    header = f"{'plan':<28} {'label':<26} {'clean %':>8} {'mCA %':>7} {'mCE':>6} {'ratio':>7} {'cached':>6}"
    print(header)
    print("-" * len(header))
    for (name, _), record in zip([("baseline", CompressionPlan())] + plans, records):
        if record["status"] != "ok":
            print(f"{name:<28} {record['label']:<26} failed: {record['error']}")
            continue
        m = record_metrics(record, baseline, spec.corruptions, spec.severities)
        print(f"{name:<28} {record['label'][:26]:<26} {m['clean_accuracy']:8.2f} {m['mean_corruption_accuracy']:7.2f} "
              f"{m['mce']:6.1f} {m['compression_ratio']:7.2f} {'yes' if record.get('cache_hit') else 'no':>6}")
    if args.export:
        _export(spec, plans, Path(args.export))
    return 0


def _activation_bits(plan: CompressionPlan) -> bool:
    qs = [plan.quantize] + [g.quantize for g in plan.groups]
    return any(q is not None and q.activation_bits for q in qs)


def _export(spec: Any, plans: list[tuple[str, CompressionPlan]], folder: Path) -> None:
    res = load_resources(spec)
    dense = len(state_dict_bytes(res.pretrained.model))
    folder.mkdir(parents=True, exist_ok=True)
    print(f"\nexported to {folder}/ (fp32 state_dict: {dense:,} bytes)")
    for name, plan in plans:
        model = compress(res.pretrained.model, plan, calibration=res.calibration)
        path = folder / f"{spec.arch}-{plan.label().replace(' ', '_')}-{plan.key()[:8]}.mcpk"
        result = export_compressed(model, path, arch=spec.arch)
        print(f"  {path.name}: {result.bytes:,} bytes ({dense / result.bytes:.1f}x smaller), gzip "
              f"{result.gzip_bytes:,} bytes ({dense / result.gzip_bytes:.1f}x)")
