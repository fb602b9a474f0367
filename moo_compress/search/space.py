"""Search spaces as data: YAML files describing genes, granularity, objectives and constraints.

The schema is documented in ``search_spaces/README.md``. A space is validated on load; every error
names the offending key (``genes.sparsity.choices[2]``) and says how to fix it.

Genes are encoded for pymoo as integer indices into each gene's ordered choices, from the weakest
compression to the strongest (sparsity ascending; cluster count ``off`` then descending; bit-width
``32`` (off) then descending), so that neighbouring integers are similar plans and pymoo's integer
crossover and mutation make sense.
"""

from __future__ import annotations

import dataclasses
import difflib
import itertools
import math
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from moo_compress.compress import (
    ClusterConfig,
    CompressionPlan,
    PruneConfig,
    QuantizeConfig,
    RecoveryConfig,
)
from moo_compress.compress.config import WEIGHT_BITS
from moo_compress.errors import ConfigError
from moo_compress.search.fidelity import Fidelity
from moo_compress.search.latency import LatencySettings
from moo_compress.search.surrogate import Surrogate

__all__ = [
    "GENE_KINDS",
    "ROBUSTNESS_METRICS",
    "SPACES_DIR",
    "Gene",
    "Variable",
    "SearchSpace",
    "Encoding",
    "FAMILY_SPACES",
    "FAMILY_DEPLOY_SPACES",
    "default_space",
    "list_spaces",
    "load_space",
]

GENE_KINDS = ("sparsity", "clusters", "weight_bits", "activation_bits")
ROBUSTNESS_METRICS = ("mean_corruption_accuracy", "mce", "relative_mce")
def _spaces_dir() -> Path:
    """``search_spaces/`` of the source tree, else the copy a regular install puts under ``<prefix>/share``."""
    source = Path(__file__).resolve().parents[2] / "search_spaces"
    installed = Path(sys.prefix) / "share" / "moo_compress" / "search_spaces"
    return source if source.is_dir() or not installed.is_dir() else installed


SPACES_DIR = _spaces_dir()
_OFF = (None, False, "off", "none")
_BITS_TEXT = ", ".join(map(str, WEIGHT_BITS))  # the bit-widths compress.QuantizeConfig accepts
_TOP_KEYS = ("name", "description", "granularity", "layer_groups", "genes", "prune", "cluster", "quantize",
             "exclude", "recovery", "objectives", "constraints", "algorithm", "fidelity")


def _close(value: str, options: Sequence[str]) -> str:
    match = difflib.get_close_matches(value, list(options), n=1, cutoff=0.5)
    return f"; did you mean {match[0]!r}?" if match else ""


def _mapping(value: Any, key: str, allowed: Sequence[str]) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError(f"{key} must be a mapping, got {type(value).__name__} {value!r}")
    for k in value:
        if k not in allowed:
            raise ConfigError(f"unknown key {key}.{k}{_close(str(k), allowed)} (allowed: {', '.join(allowed)})")
    return dict(value)


@dataclass(frozen=True)
class Gene:
    """One searchable setting and its ordered choices (``None`` = off), weakest compression first."""

    kind: str
    choices: tuple[Any, ...]

    def __post_init__(self) -> None:
        if not self.choices:
            raise ConfigError(f"genes.{self.kind} has no choices")


def _off(value: Any) -> bool:
    return value in _OFF or (isinstance(value, str) and value.lower() in ("off", "none"))


def _expand_range(spec: Mapping[str, Any], key: str, integer: bool) -> list[Any]:
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


def _parse_gene(kind: str, spec: Any) -> Gene:
    key = f"genes.{kind}"
    if not isinstance(spec, Mapping):
        spec = {"choices": spec if isinstance(spec, list) else [spec]}
    spec = _mapping(spec, key, ("choices", "low", "high", "step"))
    integer = kind != "sparsity"
    raw = list(spec["choices"]) if "choices" in spec else _expand_range(spec, key, integer)
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
            if _off(v):
                values.append(None)
            elif isinstance(v, bool) or not isinstance(v, int) or not 2 <= v <= 256:
                raise ConfigError(f"{where}={v!r}: a cluster count is an integer in [2, 256], or 'off'")
            else:
                values.append(int(v))
        elif kind == "weight_bits":
            if _off(v) or v == 32:
                values.append(None)
            elif isinstance(v, bool) or v not in WEIGHT_BITS:
                raise ConfigError(f"{where}={v!r}: weight bits are {_BITS_TEXT}, or 32 (= off, full precision)")
            else:
                values.append(int(v))
        else:  # activation_bits
            if _off(v) or v == 32:
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


@dataclass(frozen=True)
class Variable:
    """One pymoo decision variable: an index into ``gene.choices`` for ``group`` (None = whole model)."""

    name: str
    gene: Gene
    group: str | None

    @property
    def size(self) -> int:
        """Number of choices."""
        return len(self.gene.choices)


def _parse_layer_groups(groups: Any) -> dict[str, tuple[str, ...]] | None:
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


def _parse_techniques(data: Mapping[str, Any], genes_spec: Mapping[str, Any]
                      ) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """The fixed ``prune``, ``cluster`` and ``quantize`` options, checked by the config classes themselves."""
    prune = _mapping(data.get("prune"), "prune", ("scope", "structured", "removable_only"))
    cluster = _mapping(data.get("cluster"), "cluster", ("init", "preserve_sparsity"))
    quantize = _mapping(data.get("quantize"), "quantize",
                        ("per_channel", "symmetric", "activation_bits", "weight_range"))
    if "activation_bits" in quantize and "activation_bits" in genes_spec:
        raise ConfigError("quantize.activation_bits is fixed but also a gene (genes.activation_bits); keep one")
    PruneConfig(0.5, **prune)
    ClusterConfig(16, **cluster)
    QuantizeConfig(8, **quantize)
    return prune, cluster, quantize


def _parse_exclude(value: Any) -> tuple[dict[str, Any], list[str]]:
    """``exclude``: the mapping (``first_conv``, ``classifier`` flags) and its module-name patterns."""
    exclude = _mapping(value, "exclude", ("first_conv", "classifier", "patterns"))
    for flag in ("first_conv", "classifier"):
        if not isinstance(exclude.get(flag, False), bool):
            raise ConfigError(f"exclude.{flag} must be true or false, got {exclude[flag]!r}")
    patterns = exclude.get("patterns", [])
    if not isinstance(patterns, list) or not all(isinstance(p, str) for p in patterns):
        raise ConfigError("exclude.patterns must be a list of module-name glob patterns")
    return exclude, patterns


def _parse_objectives(value: Any) -> tuple[str, str | tuple[str, ...], list[int], str | None,
                                           LatencySettings | None]:
    """``objectives``: robustness metric, corruptions, severities, corruption parameter set and latency."""
    objectives = _mapping(value, "objectives",
                          ("robustness", "corruptions", "severities", "corruption_params", "latency"))
    corruption_params = objectives.get("corruption_params")
    if corruption_params is not None:
        from moo_compress.data.corruptions import get_param_set

        corruption_params = get_param_set(str(corruption_params)).name  # unknown names list the valid ones
    robustness = objectives.get("robustness", "mean_corruption_accuracy")
    if robustness not in ROBUSTNESS_METRICS:
        raise ConfigError(f"objectives.robustness {robustness!r} is unknown{_close(str(robustness), ROBUSTNESS_METRICS)}"
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


def _parse_constraints(value: Any, latency: LatencySettings | None, genes_spec: Mapping[str, Any]
                       ) -> tuple[Any, Any, Any, LatencySettings | None]:
    """``constraints``: max accuracy drop, min compression ratio, max latency, and the latency settings
    (a latency limit alone measures latency without making it an objective)."""
    constraints = _mapping(value, "constraints", ("max_accuracy_drop", "min_compression_ratio", "max_latency_ms"))
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


def _parse_algorithm(value: Any) -> tuple[str, dict[str, Any]]:
    """``algorithm``: its name and the checked mapping (sizes, budget, surrogate)."""
    algorithm = _mapping(value, "algorithm", ("name", "pop_size", "generations", "budget_images", "surrogate"))
    algo = algorithm.get("name", "nsga2")
    if algo not in ("nsga2", "grid"):
        raise ConfigError(f"algorithm.name must be 'nsga2' or 'grid', got {algo!r}")
    for key in ("pop_size", "generations", "budget_images"):
        count = algorithm.get(key)
        if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < 1):
            raise ConfigError(f"algorithm.{key} must be a positive integer, got {count!r}")
    return algo, algorithm


def _parse_fidelity(value: Any) -> Fidelity:
    """``fidelity``: the evaluation schedule."""
    fid = _mapping(value, "fidelity", ("mode", "rungs", "images", "confidence", "clean_multiple"))
    if "rungs" in fid and not isinstance(fid["rungs"], (list, tuple)):
        raise ConfigError(f"fidelity.rungs must be a list of image counts, e.g. [10, 20, 40]; "
                          f"got {fid['rungs']!r}")
    return Fidelity(**fid)


@dataclass(frozen=True)
class SearchSpace:
    """A validated search space (see ``search_spaces/README.md`` for the YAML schema).

    Attributes:
        name: Space name (the file stem by default).
        description: Free text.
        granularity: ``global`` (one gene of each kind) or ``groups`` (one per layer group).
        layer_groups: Explicit group name -> module-name patterns, or None for the architecture's
            default groups (``model_defaults(arch).layer_groups``).
        genes: The searched genes; kinds left out are off.
        prune: Fixed PruneConfig options (``scope``, ``structured``).
        cluster: Fixed ClusterConfig options (``init``, ``preserve_sparsity``).
        quantize: Fixed QuantizeConfig options (``per_channel``, ``symmetric``, ``weight_range``, and
            ``activation_bits`` when activation bits are not a gene); they apply whenever weights are quantized.
        exclude_first_conv: Leave the first convolution uncompressed.
        exclude_classifier: Leave the final classifier uncompressed.
        exclude: Module-name patterns left uncompressed.
        recovery: Recovery applied to every candidate.
        robustness: Robustness objective (one of :data:`ROBUSTNESS_METRICS`).
        corruptions: ``benchmark`` (15), ``all`` (19) or an explicit list.
        severities: Severities evaluated.
        corruption_params: The corruption parameter set (``cifar``, ``tinyimagenet``, ``imagenet``;
            ``objectives.corruption_params``), or None for the set of the size images are corrupted at
            (:func:`~moo_compress.data.corruptions.param_set_for_size`).
        max_accuracy_drop: Constraint: clean accuracy at most this many points below the baseline.
        min_compression_ratio: Constraint: compression ratio at least this.
        latency: How plans' deployed latency is measured (``objectives.latency``;
            :class:`~moo_compress.search.latency.LatencySettings`), or None when it is not.
        max_latency_ms: Constraint: batch-1 latency at most this many milliseconds (measured even when
            latency is not an objective).
        algorithm: ``nsga2`` or ``grid`` (evaluate every combination).
        pop_size: NSGA-II population size.
        generations: NSGA-II generations.
        budget_images: Default image budget (``--budget`` overrides): NSGA-II stops when it is spent,
            within ``generations``; the last generation is cut to the plans the rest pays for at the top rung.
        surrogate: How NSGA-II's offspring are screened before evaluation
            (:class:`~moo_compress.search.surrogate.Surrogate`; ``algorithm.surrogate`` in YAML).
        fidelity: How many test images each candidate is measured on: racing over nested rungs (the
            default) or a fixed count (:class:`~moo_compress.search.fidelity.Fidelity`).
        source: Where the space was loaded from.
    """

    name: str
    description: str = ""
    granularity: str = "global"
    layer_groups: Mapping[str, tuple[str, ...]] | None = None
    genes: tuple[Gene, ...] = ()
    prune: Mapping[str, Any] = field(default_factory=dict)
    cluster: Mapping[str, Any] = field(default_factory=dict)
    quantize: Mapping[str, Any] = field(default_factory=dict)
    exclude_first_conv: bool = False
    exclude_classifier: bool = False
    exclude: tuple[str, ...] = ()
    recovery: RecoveryConfig = field(default_factory=RecoveryConfig)
    robustness: str = "mean_corruption_accuracy"
    corruptions: str | tuple[str, ...] = "benchmark"
    severities: tuple[int, ...] = (1, 2, 3, 4, 5)
    corruption_params: str | None = None
    max_accuracy_drop: float | None = None
    min_compression_ratio: float | None = None
    latency: LatencySettings | None = None
    max_latency_ms: float | None = None
    algorithm: str = "nsga2"
    pop_size: int = 16
    generations: int = 6
    budget_images: int | None = None
    surrogate: Surrogate = field(default_factory=Surrogate)
    fidelity: Fidelity = field(default_factory=Fidelity)
    source: str = "<dict>"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str = "<dict>") -> SearchSpace:
        """Validates a parsed YAML document.

        Raises:
            ConfigError: naming the offending key.
        """
        if not isinstance(data, Mapping):
            raise ConfigError(f"{source}: a search space is a YAML mapping, got {type(data).__name__}")
        try:
            return cls._from_dict(_mapping(data, "space", _TOP_KEYS), source)
        except ConfigError as exc:
            raise ConfigError(f"{source}: {exc}") from None

    @classmethod
    def _from_dict(cls, data: dict[str, Any], source: str) -> SearchSpace:
        # each part is validated in the order of the file's sections, so the first error reported stays the same
        name = str(data.get("name") or Path(source).stem)
        granularity = data.get("granularity", "global")
        if granularity not in ("global", "groups"):
            raise ConfigError(f"granularity must be 'global' or 'groups', got {granularity!r}")
        layer_groups = _parse_layer_groups(data.get("layer_groups"))
        genes_spec = _mapping(data.get("genes"), "genes", GENE_KINDS)
        if not genes_spec:
            raise ConfigError(f"genes is empty; search at least one of {', '.join(GENE_KINDS)}")
        genes = tuple(_parse_gene(kind, spec) for kind, spec in genes_spec.items())
        prune, cluster, quantize = _parse_techniques(data, genes_spec)
        exclude, patterns = _parse_exclude(data.get("exclude"))
        recovery_spec = _mapping(data.get("recovery"), "recovery",
                                 [f.name for f in dataclasses.fields(RecoveryConfig)])
        recovery = RecoveryConfig(**recovery_spec)
        robustness, corruptions, severities, corruption_params, latency = _parse_objectives(data.get("objectives"))
        drop, min_ratio, max_latency, latency = _parse_constraints(data.get("constraints"), latency, genes_spec)
        algo, algorithm = _parse_algorithm(data.get("algorithm"))
        fidelity = _parse_fidelity(data.get("fidelity"))
        return cls(
            name=name,
            description=str(data.get("description", "")).strip(),
            granularity=granularity,
            layer_groups=layer_groups,
            genes=genes,
            prune=prune,
            cluster=cluster,
            quantize=quantize,
            exclude_first_conv=exclude.get("first_conv", False),
            exclude_classifier=exclude.get("classifier", False),
            exclude=tuple(patterns),
            recovery=recovery,
            robustness=robustness,
            corruptions=corruptions,
            severities=tuple(sorted(set(severities))),
            corruption_params=corruption_params,
            max_accuracy_drop=None if drop is None else float(drop),
            min_compression_ratio=None if min_ratio is None else float(min_ratio),
            latency=latency,
            max_latency_ms=None if max_latency is None else float(max_latency),
            algorithm=algo,
            pop_size=algorithm.get("pop_size", 16),
            generations=algorithm.get("generations", 6),
            budget_images=algorithm.get("budget_images"),
            surrogate=Surrogate.parse(algorithm.get("surrogate")),
            fidelity=fidelity,
            source=source,
        )

    @classmethod
    def load(cls, name_or_path: str | Path) -> SearchSpace:
        """Loads a space by file path, or by name from the shipped ``search_spaces/`` folder.

        Raises:
            ConfigError: if the file is missing (listing the shipped spaces) or invalid.
        """
        path = Path(name_or_path).expanduser()
        if not path.is_file():
            shipped = SPACES_DIR / f"{name_or_path}.yaml"
            if shipped.is_file():
                path = shipped
            else:
                names = list_spaces()
                raise ConfigError(f"search space {str(name_or_path)!r} not found{_close(str(name_or_path), names)} "
                                  f"(a YAML path, or one of: {', '.join(names)})")
        try:
            data = yaml.safe_load(path.read_text())
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
        return cls.from_dict(data, source=str(path))

    def to_dict(self) -> dict[str, Any]:
        """The resolved space in the YAML schema (written into each run's ``config.yaml``)."""

        def show(v: Any, kind: str) -> Any:
            if v is None:
                return 32 if kind == "weight_bits" else "off"
            return v

        return {
            "name": self.name,
            "description": self.description,
            "granularity": self.granularity,
            "layer_groups": "default" if self.layer_groups is None else {k: list(v) for k, v in self.layer_groups.items()},
            "genes": {g.kind: {"choices": [show(v, g.kind) for v in g.choices]} for g in self.genes},
            "prune": dict(self.prune),
            "cluster": dict(self.cluster),
            "quantize": dict(self.quantize),
            "exclude": {"first_conv": self.exclude_first_conv, "classifier": self.exclude_classifier,
                        "patterns": list(self.exclude)},
            "recovery": self.recovery.to_dict(),
            "objectives": {"robustness": self.robustness,
                           "corruptions": self.corruptions if isinstance(self.corruptions, str) else list(self.corruptions),
                           "severities": list(self.severities), "corruption_params": self.corruption_params,
                           "latency": self.latency.to_dict() if self.latency is not None else False},
            "constraints": {"max_accuracy_drop": self.max_accuracy_drop,
                            "min_compression_ratio": self.min_compression_ratio,
                            "max_latency_ms": self.max_latency_ms},
            "algorithm": {"name": self.algorithm, "pop_size": self.pop_size, "generations": self.generations,
                          "budget_images": self.budget_images, "surrogate": self.surrogate.to_dict()},
            "fidelity": self.fidelity.to_dict(),
        }

    def encoding(self, layer_groups: Mapping[str, Sequence[str]]) -> Encoding:
        """The decision variables for a model whose default groups are ``layer_groups``."""
        groups = dict(self.layer_groups) if self.layer_groups is not None else {k: tuple(v) for k, v in layer_groups.items()}
        return Encoding(self, groups)


@dataclass(frozen=True)
class Encoding:
    """The integer decision variables of a space for one architecture, and their decoding to plans."""

    space: SearchSpace
    groups: Mapping[str, tuple[str, ...]]

    @property
    def variables(self) -> tuple[Variable, ...]:
        """Searched variables (genes with one choice are fixed, not searched)."""
        scopes: list[str | None] = list(self.groups) if self.space.granularity == "groups" else [None]
        return tuple(
            Variable(f"{g}.{gene.kind}" if g else gene.kind, gene, g)
            for g in scopes for gene in self.space.genes if len(gene.choices) > 1
        )

    @property
    def upper_bounds(self) -> np.ndarray:
        """Largest index of every variable (lower bounds are 0)."""
        return np.array([v.size - 1 for v in self.variables], dtype=int)

    def grid_size(self) -> int:
        """Number of distinct genotypes."""
        return int(np.prod([v.size for v in self.variables])) if self.variables else 1

    def grid(self) -> Iterator[np.ndarray]:
        """Every genotype, in lexicographic order."""
        for combo in itertools.product(*[range(v.size) for v in self.variables]):
            yield np.array(combo, dtype=int)

    def values(self, x: Sequence[int]) -> dict[str, Any]:
        """Variable name -> chosen value (None = off) for genotype ``x``."""
        variables = self.variables
        if len(x) != len(variables):
            raise ConfigError(f"genotype has {len(x)} values but the space has {len(variables)} variables")
        out = {}
        for v, i in zip(variables, x):
            i = int(i)
            if not 0 <= i < v.size:
                raise ConfigError(f"gene {v.name} index {i} is outside [0, {v.size - 1}]")
            out[v.name] = v.gene.choices[i]
        return out

    def _techniques(self, values: Mapping[str, Any], prefix: str) -> dict[str, Any]:
        fixed = {g.kind: g.choices[0] for g in self.space.genes if len(g.choices) == 1}
        get = {kind: values.get(f"{prefix}{kind}", fixed.get(kind)) for kind in GENE_KINDS}
        sparsity, clusters, bits = get["sparsity"], get["clusters"], get["weight_bits"]
        quantize = dict(self.space.quantize)
        if any(g.kind == "activation_bits" for g in self.space.genes):
            quantize["activation_bits"] = get["activation_bits"]
        return {
            "prune": PruneConfig(sparsity, **self.space.prune) if sparsity else None,
            "cluster": ClusterConfig(clusters, **self.space.cluster) if clusters else None,
            # activation quantization rides on weight quantization (QuantizeConfig needs weight bits)
            "quantize": QuantizeConfig(bits, **quantize) if bits else None,
        }

    def decode(self, x: Sequence[int]) -> CompressionPlan:
        """The compression plan of genotype ``x``."""
        values = self.values(x)
        options = dict(exclude_first_conv=self.space.exclude_first_conv,
                       exclude_classifier=self.space.exclude_classifier,
                       exclude=self.space.exclude, recovery=self.space.recovery)
        if self.space.granularity == "global":
            return CompressionPlan(**self._techniques(values, ""), **options)
        settings = {g: self._techniques(values, f"{g}.") for g in self.groups}
        return CompressionPlan.for_layer_groups(self.groups, settings, **options)

    def strongest(self) -> np.ndarray:
        """The genotype with the strongest compression in every gene (the largest reachable ratio)."""
        return self.upper_bounds.copy()


#: The space used for each architecture family when ``--space`` is not given.
FAMILY_SPACES = {"vgg": "vgg19", "cifar_resnet": "cifar_resnet", "resnet": "resnet50", "mobilenetv2": "mobilenetv2"}
#: The deployment space of each family (``--space deploy``): what changes latency, with latency as an objective.
#: Other models get ``deploy``, whose structured pruning targets the layers their own graph lets a
#: deployment shrink (``prune.removable_only``).
FAMILY_DEPLOY_SPACES = {"vgg": "deploy_vgg19", "cifar_resnet": "deploy_cifar_resnet", "resnet": "deploy_resnet50",
                        "mobilenetv2": "deploy_mobilenetv2"}


def default_space(family: str, name: str | None = None) -> str:
    """The space a search over a model of ``family`` uses: ``name`` as given, the family's shipped space
    when ``name`` is None (``default`` for families without one), its deployment space for ``deploy``."""
    if name == "deploy":
        return FAMILY_DEPLOY_SPACES.get(family, "deploy")
    return name or FAMILY_SPACES.get(family, "default")


def list_spaces() -> list[str]:
    """Names of the search spaces shipped in ``search_spaces/``."""
    return sorted(p.stem for p in SPACES_DIR.glob("*.yaml"))


def load_space(name_or_path: str | Path) -> SearchSpace:
    """Shorthand for :meth:`SearchSpace.load`."""
    return SearchSpace.load(name_or_path)
