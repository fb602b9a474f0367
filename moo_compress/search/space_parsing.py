"""Reading a search space's YAML: each section checked, with errors that name the key and the fix."""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping, Sequence
from typing import Any

from moo_compress.compress import ClusterConfig, PruneConfig, QuantizeConfig
from moo_compress.compress.config import WEIGHT_BITS
from moo_compress.errors import ConfigError
from moo_compress.search.encoding import Gene
from moo_compress.search.fidelity import Fidelity
from moo_compress.search.latency import LatencySettings

#: The robustness metrics a space may optimise.
ROBUSTNESS_METRICS = ("mean_corruption_accuracy", "mce", "relative_mce")

__all__ = ["ROBUSTNESS_METRICS", "close", "mapping", "off", "expand_range", "parse_gene", "parse_layer_groups",
           "parse_techniques", "parse_exclude", "parse_objectives", "parse_constraints", "parse_algorithm",
           "parse_fidelity"]


_OFF = (None, False, "off", "none")
_BITS_TEXT = ", ".join(map(str, WEIGHT_BITS))  # the bit-widths compress.QuantizeConfig accepts


def close(value: str, options: Sequence[str]) -> str:
    match = difflib.get_close_matches(value, list(options), n=1, cutoff=0.5)
    return f"; did you mean {match[0]!r}?" if match else ""


def mapping(value: Any, key: str, allowed: Sequence[str]) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError(f"{key} must be a mapping, got {type(value).__name__} {value!r}")
    for k in value:
        if k not in allowed:
            raise ConfigError(f"unknown key {key}.{k}{close(str(k), allowed)} (allowed: {', '.join(allowed)})")
    return dict(value)




def off(value: Any) -> bool:
    return value in _OFF or (isinstance(value, str) and value.lower() in ("off", "none"))


def expand_range(spec: Mapping[str, Any], key: str, integer: bool) -> list[Any]:
    try:
        low, high, step = spec["low"], spec["high"], spec["step"]
    except KeyError as exc:
        raise ConfigError(f"{key} needs 'choices', or 'low', 'high' and 'step'; {exc.args[0]!r} is missing") from None
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (low, high, step)) or step <= 0:
        raise ConfigError(f"{key}: low, high and step must be numbers with step > 0, got {low}, {high}, {step}")
    if high < low:
        raise ConfigError(f"{key}: high ({high}) is below low ({low})")
    count = int(math.floor((high - low) / step + 1e-9)) + 1
    values = [low + i * step for i in range(count)]
    return [int(round(v)) for v in values] if integer else [round(float(v), 10) for v in values]


def parse_gene(kind: str, spec: Any) -> Gene:
    key = f"genes.{kind}"
    if not isinstance(spec, Mapping):
        spec = {"choices": spec if isinstance(spec, list) else [spec]}
    spec = mapping(spec, key, ("choices", "low", "high", "step"))
    integer = kind != "sparsity"
    raw = list(spec["choices"]) if "choices" in spec else expand_range(spec, key, integer)
    if "choices" in spec and not isinstance(spec["choices"], list):
        raise ConfigError(f"{key}.choices must be a list, got {spec['choices']!r}")
    values: list[Any] = []
    for i, v in enumerate(raw):
        where = f"{key}.choices[{i}]"
        if kind == "sparsity":
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v < 1:
                raise ConfigError(f"{where}={v!r}: sparsity is a fraction in [0, 1) (0 = no pruning), e.g. 0.5")
            values.append(float(v))
        elif kind == "clusters":
            if off(v):
                values.append(None)
            elif isinstance(v, bool) or not isinstance(v, int) or not 2 <= v <= 256:
                raise ConfigError(f"{where}={v!r}: a cluster count is an integer in [2, 256], or 'off'")
            else:
                values.append(int(v))
        elif kind == "weight_bits":
            if off(v) or v == 32:
                values.append(None)
            elif isinstance(v, bool) or v not in WEIGHT_BITS:
                raise ConfigError(f"{where}={v!r}: weight bits are {_BITS_TEXT}, or 32 (= off, full precision)")
            else:
                values.append(int(v))
        else:  # activation_bits
            if off(v) or v == 32:
                values.append(None)
            elif isinstance(v, bool) or v not in WEIGHT_BITS:
                raise ConfigError(f"{where}={v!r}: activation bits are {_BITS_TEXT}, or 'off'")
            else:
                values.append(int(v))
    unique = list(dict.fromkeys(values))
    if kind == "sparsity":
        unique.sort()
    else:  # off first, then decreasing (weaker compression first)
        unique.sort(key=lambda v: (v is not None, -(v or 0)))
    return Gene(kind, tuple(unique))


def parse_layer_groups(groups: Any) -> dict[str, tuple[str, ...]] | None:
    """``layer_groups``: None for the architecture's default groups, else group -> module-name patterns."""
    if groups in (None, "default"):
        return None
    if not isinstance(groups, Mapping) or not groups:
        raise ConfigError("layer_groups must be 'default' or a mapping group -> [module-name patterns]")
    layer_groups = {}
    for g, pats in groups.items():
        if isinstance(pats, str):
            pats = [pats]
        if not isinstance(pats, list) or not pats or not all(isinstance(p, str) for p in pats):
            raise ConfigError(f"layer_groups.{g} must be a list of module-name glob patterns")
        layer_groups[str(g)] = tuple(pats)
    return layer_groups


def parse_techniques(data: Mapping[str, Any], genes_spec: Mapping[str, Any]
                      ) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """The fixed ``prune``, ``cluster`` and ``quantize`` options, checked by the config classes themselves."""
    prune = mapping(data.get("prune"), "prune", ("scope", "structured", "removable_only"))
    cluster = mapping(data.get("cluster"), "cluster", ("init", "preserve_sparsity"))
    quantize = mapping(data.get("quantize"), "quantize",
                        ("per_channel", "symmetric", "activation_bits", "weight_range"))
    if "activation_bits" in quantize and "activation_bits" in genes_spec:
        raise ConfigError("quantize.activation_bits is fixed but also a gene (genes.activation_bits); keep one")
    PruneConfig(0.5, **prune)
    ClusterConfig(16, **cluster)
    QuantizeConfig(8, **quantize)
    return prune, cluster, quantize


def parse_exclude(value: Any) -> tuple[dict[str, Any], list[str]]:
    """``exclude``: the mapping (``first_conv``, ``classifier`` flags) and its module-name patterns."""
    exclude = mapping(value, "exclude", ("first_conv", "classifier", "patterns"))
    for flag in ("first_conv", "classifier"):
        if not isinstance(exclude.get(flag, False), bool):
            raise ConfigError(f"exclude.{flag} must be true or false, got {exclude[flag]!r}")
    patterns = exclude.get("patterns", [])
    if not isinstance(patterns, list) or not all(isinstance(p, str) for p in patterns):
        raise ConfigError("exclude.patterns must be a list of module-name glob patterns")
    return exclude, patterns


def parse_objectives(value: Any) -> tuple[str, str | tuple[str, ...], list[int], str | None,
                                           LatencySettings | None]:
    """``objectives``: robustness metric, corruptions, severities, corruption parameter set and latency."""
    objectives = mapping(value, "objectives",
                          ("robustness", "corruptions", "severities", "corruption_params", "latency"))
    corruption_params = objectives.get("corruption_params")
    if corruption_params is not None:
        from moo_compress.data.corruptions import get_param_set

        corruption_params = get_param_set(str(corruption_params)).name  # unknown names list the valid ones
    robustness = objectives.get("robustness", "mean_corruption_accuracy")
    if robustness not in ROBUSTNESS_METRICS:
        raise ConfigError(f"objectives.robustness {robustness!r} is unknown{close(str(robustness), ROBUSTNESS_METRICS)}"
                          f" (use {', '.join(ROBUSTNESS_METRICS)})")
    corruptions = objectives.get("corruptions", "benchmark")
    if isinstance(corruptions, list):
        corruptions = tuple(str(c) for c in corruptions)
        if not corruptions:
            raise ConfigError("objectives.corruptions is an empty list")
    elif corruptions not in ("benchmark", "all"):
        raise ConfigError("objectives.corruptions must be 'benchmark' (15), 'all' (19) or a list of names")
    severities = objectives.get("severities", [1, 2, 3, 4, 5])
    if not isinstance(severities, list) or not severities or not all(
            isinstance(s, int) and not isinstance(s, bool) and 1 <= s <= 5 for s in severities):
        raise ConfigError(f"objectives.severities must be a non-empty list of integers 1-5, got {severities!r}")
    latency = LatencySettings.parse(objectives.get("latency"))
    return robustness, corruptions, severities, corruption_params, latency


def parse_constraints(value: Any, latency: LatencySettings | None, genes_spec: Mapping[str, Any]
                       ) -> tuple[Any, Any, Any, LatencySettings | None]:
    """``constraints``: max accuracy drop, min compression ratio, max latency, and the latency settings
    (a latency limit alone measures latency without making it an objective)."""
    constraints = mapping(value, "constraints", ("max_accuracy_drop", "min_compression_ratio", "max_latency_ms"))
    max_latency = constraints.get("max_latency_ms")
    if max_latency is not None:
        if isinstance(max_latency, bool) or not isinstance(max_latency, (int, float)) or max_latency <= 0:
            raise ConfigError(f"constraints.max_latency_ms must be a positive number of milliseconds, "
                              f"got {max_latency!r}")
        latency = latency or LatencySettings(objective=False)
    drop = constraints.get("max_accuracy_drop")
    if drop is not None and (isinstance(drop, bool) or not isinstance(drop, (int, float)) or drop < 0):
        raise ConfigError(f"constraints.max_accuracy_drop must be a number of points >= 0, got {drop!r}")
    min_ratio = constraints.get("min_compression_ratio")
    if min_ratio is not None and (isinstance(min_ratio, bool) or not isinstance(min_ratio, (int, float))
                                  or min_ratio < 1):
        raise ConfigError(f"constraints.min_compression_ratio must be a number >= 1, got {min_ratio!r}")
    if min_ratio is not None and min_ratio > 1 and not genes_spec:
        raise ConfigError("constraints.min_compression_ratio > 1 cannot be met without genes")
    return drop, min_ratio, max_latency, latency


def parse_algorithm(value: Any) -> tuple[str, dict[str, Any]]:
    """``algorithm``: its name and the checked mapping (sizes, budget, surrogate)."""
    algorithm = mapping(value, "algorithm", ("name", "pop_size", "generations", "budget_images", "surrogate"))
    from moo_compress.search.algorithms import list_algorithms  # the registry needs the encoding, which needs this

    algo = algorithm.get("name", "nsga2")
    if algo not in list_algorithms():
        raise ConfigError(f"algorithm.name must be one of {', '.join(repr(n) for n in list_algorithms())}, "
                          f"got {algo!r}")
    for key in ("pop_size", "generations", "budget_images"):
        count = algorithm.get(key)
        if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < 1):
            raise ConfigError(f"algorithm.{key} must be a positive integer, got {count!r}")
    return algo, algorithm


def parse_fidelity(value: Any) -> Fidelity:
    """``fidelity``: the evaluation schedule."""
    fid = mapping(value, "fidelity", ("mode", "rungs", "images", "confidence", "clean_multiple"))
    if "rungs" in fid and not isinstance(fid["rungs"], (list, tuple)):
        raise ConfigError(f"fidelity.rungs must be a list of image counts, e.g. [10, 20, 40]; "
                          f"got {fid['rungs']!r}")
    return Fidelity(**fid)
