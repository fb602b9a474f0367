"""Which layers a plan touches: a filter function picks candidates, the plan's groups and exclusions do the rest."""

from __future__ import annotations

import dataclasses
import fnmatch
from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from moo_compress.compress.channels import channel_graph
from moo_compress.compress.config import ClusterConfig, CompressionPlan, PruneConfig, QuantizeConfig
from moo_compress.errors import ConfigError

__all__ = ["LayerFilter", "is_compressible", "candidate_layers", "Target", "resolve_targets"]

#: ``filter_fn(module_name, module) -> bool``: whether a module's ``weight`` may be compressed.
LayerFilter = Callable[[str, nn.Module], bool]


def is_compressible(name: str, module: nn.Module) -> bool:
    """The default filter: every ``nn.Conv2d`` and ``nn.Linear`` (their weights hold almost all parameters)."""
    return isinstance(module, (nn.Conv2d, nn.Linear)) and isinstance(getattr(module, "weight", None), nn.Parameter)


def candidate_layers(model: nn.Module, filter_fn: LayerFilter = is_compressible) -> list[tuple[str, nn.Module]]:
    """``(name, module)`` of every module ``filter_fn`` selects, in module order."""
    return [(name, module) for name, module in model.named_modules() if name and filter_fn(name, module)]


@dataclass(frozen=True)
class Target:
    """One layer to compress and the techniques its group applies.

    Attributes:
        name: Module name (``features.0``).
        module: The module (in the model being compressed).
        group: The plan group that matched it, or None for the plan's top level.
        prune: Pruning config, or None.
        cluster: Clustering config, or None.
        quantize: Quantization config, or None.
    """

    name: str
    module: nn.Module
    group: str | None
    prune: PruneConfig | None
    cluster: ClusterConfig | None
    quantize: QuantizeConfig | None


def _sample(names: list[str]) -> str:
    more = f", ... ({len(names)} in all)" if len(names) > 8 else ""
    return ", ".join(names[:8]) + more


def resolve_targets(model: nn.Module, plan: CompressionPlan, filter_fn: LayerFilter = is_compressible) -> list[Target]:
    """The layers ``plan`` compresses in ``model``, in module order, each with its techniques.

    A ``PruneConfig(removable_only=True)`` is dropped from the layers whose filters cannot be removed
    from a deployed graph (:func:`~moo_compress.compress.channels.channel_graph`); they keep their
    other techniques.

    Raises:
        ConfigError: if the filter selects no layer, an exclusion or group pattern matches no layer,
            two groups claim the same layer, ``exclude_classifier`` is set on a model without Linear,
            or a plan prunes ``removable_only`` a model torch.fx cannot trace.
    """
    layers = candidate_layers(model, filter_fn)
    names = [n for n, _ in layers]
    if not layers:
        raise ConfigError(
            f"{type(model).__name__} has no layer the filter selects (default: Conv2d and Linear); "
            "pass a filter_fn that selects the layers to compress"
        )
    excluded: set[str] = set()
    if plan.exclude_first_conv:
        convs = [n for n, m in layers if isinstance(m, nn.Conv2d)]
        if not convs:
            raise ConfigError("exclude_first_conv is set but the model has no Conv2d; set it to False")
        excluded.add(convs[0])
    if plan.exclude_classifier:
        linears = [n for n, m in layers if isinstance(m, nn.Linear)]
        if not linears:
            raise ConfigError(
                "exclude_classifier is set but the model has no Linear layer; set it to False "
                "or name the head in 'exclude'"
            )
        excluded.add(linears[-1])
    for pattern in plan.exclude:
        hits = fnmatch.filter(names, pattern)
        if not hits:
            raise ConfigError(f"exclude pattern {pattern!r} matches no layer; layers are: {_sample(names)}")
        excluded.update(hits)

    owner: dict[str, str] = {}
    for group in plan.groups:
        hits = [n for n in names if any(fnmatch.fnmatchcase(n, p) for p in group.patterns)]
        if not hits:
            raise ConfigError(
                f"group {group.name!r} patterns {list(group.patterns)} match no layer; layers are: {_sample(names)}"
            )
        for n in hits:
            if n in owner:
                raise ConfigError(
                    f"layer {n!r} is matched by groups {owner[n]!r} and {group.name!r}; "
                    "make the groups' patterns disjoint"
                )
            owner[n] = group.name

    targets = []
    for name, module in layers:
        if name in excluded:
            continue
        group = owner.get(name)
        prune, cluster, quantize = plan.configs_for(group)
        if prune is None and cluster is None and quantize is None:
            continue
        targets.append(Target(name, module, group, prune, cluster, quantize))
    return _removable_only(model, targets)


def _removable_only(model: nn.Module, targets: list[Target]) -> list[Target]:
    """``targets`` without the ``removable_only`` pruning of layers whose filters cannot be removed."""
    if not any(t.prune is not None and t.prune.removable_only for t in targets):
        return targets
    graph = channel_graph(model)
    if graph.untraceable is not None:
        raise ConfigError(
            f"PruneConfig(removable_only=True) needs to follow {type(model).__name__}'s layer outputs, but "
            f"torch.fx cannot trace the model ({graph.untraceable}); name the layers not to prune in the "
            "plan's 'exclude' patterns (or give them a group without pruning) and use removable_only=False, "
            "or prune with plain structured=True"
        )
    out = []
    for t in targets:
        if t.prune is not None and t.prune.removable_only and t.name not in graph.removable:
            t = dataclasses.replace(t, prune=None)
            if t.cluster is None and t.quantize is None:
                continue
        out.append(t)
    return out
