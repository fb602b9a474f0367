"""A search space's integer decision variables for one architecture, and their decoding to plans."""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from moo_compress.compress import ClusterConfig, CompressionPlan, PruneConfig, QuantizeConfig
from moo_compress.errors import ConfigError

if TYPE_CHECKING:
    from moo_compress.search.space import SearchSpace

__all__ = ["GENE_KINDS", "Gene", "Variable", "Encoding"]

#: The genes a space may search.
GENE_KINDS = ("sparsity", "clusters", "weight_bits", "activation_bits")


@dataclass(frozen=True)
class Gene:
    """One searchable setting and its ordered choices (``None`` = off), weakest compression first."""

    kind: str
    choices: tuple[Any, ...]

    def __post_init__(self) -> None:
        if not self.choices:
            raise ConfigError(f"genes.{self.kind} has no choices")


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
        for v, i in zip(variables, x, strict=True):
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
