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
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from moo_compress.compress import (
    RecoveryConfig,
)
from moo_compress.errors import ConfigError
from moo_compress.search.encoding import GENE_KINDS, Encoding, Gene, Variable
from moo_compress.search.fidelity import Fidelity, Promotion
from moo_compress.search.latency import LatencySettings
from moo_compress.search.space_parsing import (
    ROBUSTNESS_METRICS,
    close,
    mapping,
    parse_algorithm,
    parse_constraints,
    parse_exclude,
    parse_fidelity,
    parse_gene,
    parse_layer_groups,
    parse_objectives,
    parse_techniques,
)
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

def _spaces_dir() -> Path:
    """``search_spaces/`` of the source tree, else the copy a regular install puts under ``<prefix>/share``."""
    source = Path(__file__).resolve().parents[2] / "search_spaces"
    installed = Path(sys.prefix) / "share" / "moo_compress" / "search_spaces"
    return source if source.is_dir() or not installed.is_dir() else installed


SPACES_DIR = _spaces_dir()
_TOP_KEYS = ("name", "description", "granularity", "layer_groups", "genes", "prune", "cluster", "quantize",
             "exclude", "recovery", "promote", "objectives", "constraints", "algorithm", "fidelity")


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
        recovery: Recovery applied to every candidate (the cheap level).
        promotion: The expensive recovery level and how many plans the search may give it after selection
            (``promote``; :class:`~moo_compress.search.fidelity.Promotion`, off by default).
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
        algorithm: A name of :data:`~moo_compress.search.algorithms.ALGORITHMS`: ``nsga2``, ``nsga3`` or
            ``grid`` (evaluate every combination).
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
    promotion: Promotion = field(default_factory=Promotion)
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
            return cls._from_dict(mapping(data, "space", _TOP_KEYS), source)
        except ConfigError as exc:
            raise ConfigError(f"{source}: {exc}") from None

    @classmethod
    def _from_dict(cls, data: dict[str, Any], source: str) -> SearchSpace:
        # each part is validated in the order of the file's sections, so the first error reported stays the same
        name = str(data.get("name") or Path(source).stem)
        granularity = data.get("granularity", "global")
        if granularity not in ("global", "groups"):
            raise ConfigError(f"granularity must be 'global' or 'groups', got {granularity!r}")
        layer_groups = parse_layer_groups(data.get("layer_groups"))
        genes_spec = mapping(data.get("genes"), "genes", GENE_KINDS)
        if not genes_spec:
            raise ConfigError(f"genes is empty; search at least one of {', '.join(GENE_KINDS)}")
        genes = tuple(parse_gene(kind, spec) for kind, spec in genes_spec.items())
        prune, cluster, quantize = parse_techniques(data, genes_spec)
        exclude, patterns = parse_exclude(data.get("exclude"))
        recovery_spec = mapping(data.get("recovery"), "recovery",
                                 [f.name for f in dataclasses.fields(RecoveryConfig)])
        recovery = RecoveryConfig(**recovery_spec)
        promotion = Promotion.parse(data.get("promote"), recovery)
        robustness, corruptions, severities, corruption_params, latency = parse_objectives(data.get("objectives"))
        drop, min_ratio, max_latency, latency = parse_constraints(data.get("constraints"), latency, genes_spec)
        algo, algorithm = parse_algorithm(data.get("algorithm"))
        fidelity = parse_fidelity(data.get("fidelity"))
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
            promotion=promotion,
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
                raise ConfigError(f"search space {str(name_or_path)!r} not found{close(str(name_or_path), names)} "
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
            "layer_groups": ("default" if self.layer_groups is None
                             else {k: list(v) for k, v in self.layer_groups.items()}),
            "genes": {g.kind: {"choices": [show(v, g.kind) for v in g.choices]} for g in self.genes},
            "prune": dict(self.prune),
            "cluster": dict(self.cluster),
            "quantize": dict(self.quantize),
            "exclude": {"first_conv": self.exclude_first_conv, "classifier": self.exclude_classifier,
                        "patterns": list(self.exclude)},
            "recovery": self.recovery.to_dict(),
            **({"promote": self.promotion.to_dict()} if self.promotion.enabled else {}),
            "objectives": {"robustness": self.robustness,
                           "corruptions": (self.corruptions if isinstance(self.corruptions, str)
                                           else list(self.corruptions)),
                           "severities": list(self.severities), "corruption_params": self.corruption_params,
                           "latency": self.latency.to_dict() if self.latency is not None else False},
            "constraints": {"max_accuracy_drop": self.max_accuracy_drop,
                            "min_compression_ratio": self.min_compression_ratio,
                            "max_latency_ms": self.max_latency_ms},
            "algorithm": {"name": self.algorithm, "pop_size": self.pop_size, "generations": self.generations,
                          "budget_images": self.budget_images, "surrogate": self.surrogate.to_dict()},
            "fidelity": self.fidelity.to_dict(),
        }

    @property
    def calibration_needed(self) -> int:
        """Calibration images its recovery levels read (the cheap one's and, when plans are promoted, the
        expensive one's)."""
        expensive = self.promotion.recovery.images_needed if self.promotion.enabled else 0
        return max(self.recovery.images_needed, expensive)

    def encoding(self, layer_groups: Mapping[str, Sequence[str]]) -> Encoding:
        """The decision variables for a model whose default groups are ``layer_groups``."""
        groups = (dict(self.layer_groups) if self.layer_groups is not None
                  else {k: tuple(v) for k, v in layer_groups.items()})
        return Encoding(self, groups)


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
