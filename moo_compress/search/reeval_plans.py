"""Which plans a re-evaluation evaluates, on which images: plans picked from a run or given as JSON,
the image count and split options, the selection-bias warning, and the run's own settings.

Used by :mod:`moo_compress.search.reevaluate` and ``python -m moo_compress.evaluate``.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from typing import Any

from moo_compress.compress import (
    ClusterConfig,
    CompressionPlan,
    PruneConfig,
    QuantizeConfig,
    RecoveryConfig,
)
from moo_compress.errors import ConfigError
from moo_compress.report.rundata import RunData
from moo_compress.search.latency import LatencySettings
from moo_compress.search.settings import DEFAULTS, FLAT_NAMES, SearchSettings

__all__ = [
    "DEFAULT_IMAGES",
    "SPLIT_CHOICES",
    "SelectionBiasWarning",
    "images_option",
    "parse_plan",
    "run_latency",
    "run_settings",
    "select_plans",
    "selection_warning",
    "split_option",
]

#: Default images per (corruption, severity) of a re-evaluation: minutes on a 2-core CPU for ResNet-20 and
#: VGG-19 (clean accuracy uses every image of the split). ``"all"`` (full fidelity) is an explicit choice.
DEFAULT_IMAGES = 500
#: Parts of the test set a re-evaluation can use (:func:`~moo_compress.data.split_indices`).
SPLIT_CHOICES = ("report", "search", "all")


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


def run_settings(run: RunData, overrides: dict[str, Any]) -> SearchSettings:
    """The run's settings (model, data, precision, split seed, threads), with the execution ``overrides``
    (``device``, ``batch_size``, ``precision``, ``cache_dir``...) that are not None."""
    data = {k: v for k, v in run.settings.items() if k in FLAT_NAMES}  # any format version; old keys dropped
    info = run.config["run"]
    data.setdefault("split_seed", int((info.get("split") or {}).get("seed", 0)))  # older runs: seed 0
    data.update(arch=info["arch"], weights=info["weights"])
    settings = SearchSettings.from_dict(data)
    threads = settings.execution.threads or DEFAULTS["execution"]["threads"]
    return settings.replace(execution={"threads": threads, **{k: v for k, v in overrides.items() if v is not None}})


def run_latency(run: RunData | None) -> LatencySettings:
    """How a re-evaluation times plans: as the run did when it measured latency, else the defaults."""
    measured = run.latency_settings if run is not None else {}
    fields = {f.name for f in dataclasses.fields(LatencySettings)}
    return LatencySettings(**{k: v for k, v in measured.items() if k in fields})
