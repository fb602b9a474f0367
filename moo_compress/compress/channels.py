"""Where a layer's output channels go: which batch norm reads them, and whether they can be removed.

Structured pruning zeroes whole output filters. Two questions decide whether a deployed graph can
then shrink, and both are answered here from the model's ``torch.fx`` graph
(``torch.fx.symbolic_trace``; no example input is needed):

* **Which batch norm reads a layer's output** (:attr:`ChannelGraph.batchnorms`): a pruned filter's
  output is only exactly zero after that batch norm when the norm's weight and bias of the channel are
  zero too, so :func:`~moo_compress.compress.compress` zeroes them.
* **Which layers' filters can be physically removed** (:attr:`ChannelGraph.removable`): the output
  reaches only other layers (Conv2d of one group, Linear), through the operations of the one table
  that the ONNX export (:func:`~moo_compress.deploy.graph.remove_zero_filters`) reads too
  (:data:`~moo_compress.compress.channel_ops.CHANNEL_OPS`), under these conditions:

  * a batch norm reads the layer's output directly (it is folded into the layer on export);
  * a Hardtanh (module or function) has ``min <= 0 <= max``; a max pooling returns no indices;
  * pooling comes before any flatten (2-D only);
  * a flatten goes to ``(batch, features)`` (``torch.flatten(x, 1)``, ``nn.Flatten()``,
    ``x.view(x.size(0), -1)``) and only Linear layers read it.

  Everything else is not removable (conservative): an addition (a residual block), a concatenation, a
  multiplication, a grouped or depthwise convolution, a convolution padding otherwise than with zeros,
  the graph output, a layer called more than once (shared weights), a batch norm without affine
  parameters (its output for a zero channel is not zero), and any operation not in the table, including
  activations such as GELU or SiLU that the export cannot remove a channel across. Linear layers are
  assumed to see ``(batch, features)`` inputs, as a CNN's classifier does.

A model that torch.fx cannot trace (data-dependent control flow) gives an empty analysis whose
:attr:`ChannelGraph.untraceable` says why; callers decide what that means for them.
"""

from __future__ import annotations

import operator
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

import torch.nn.functional as F
from torch import fx, nn

from moo_compress.compress.channel_ops import (
    OpKind,
    fx_functions,
    fx_methods,
    fx_modules,
)

__all__ = ["ChannelGraph", "channel_graph"]


@dataclass(frozen=True)
class ChannelGraph:
    """What a model's torch.fx graph says about the output channels of its Conv2d and Linear layers.

    Attributes:
        batchnorms: Layer name -> name of the batch norm (with affine parameters, as many features as
            the layer has filters) that reads the layer's output directly and is its only reader.
        removable: Names of the layers whose filters can be physically removed (module docstring).
        untraceable: Why torch.fx could not trace the model, or None when it could (then the two
            fields above are complete; otherwise they are empty).
    """

    batchnorms: Mapping[str, str] = field(default_factory=dict)
    removable: frozenset[str] = frozenset()
    untraceable: str | None = None


# The rule (compress.channel_ops), in torch.fx spellings.
_TRANSPARENT_MODULES = fx_modules(OpKind.VANISHES)
_TRANSPARENT_FUNCTIONS = fx_functions(OpKind.VANISHES)
_TRANSPARENT_METHODS = fx_methods(OpKind.VANISHES)
_SHAPE_METHODS = fx_methods(OpKind.SHAPE_ONLY)
_ACTIVATION_MODULES = fx_modules(OpKind.ACTIVATION)
_ACTIVATION_FUNCTIONS = fx_functions(OpKind.ACTIVATION)
_ACTIVATION_METHODS = fx_methods(OpKind.ACTIVATION)
_POOL_MODULES = fx_modules(OpKind.POOLING)
_POOL_FUNCTIONS = fx_functions(OpKind.POOLING)
_FLATTEN_MODULES = fx_modules(OpKind.FLATTEN)
_FLATTEN_FUNCTIONS = fx_functions(OpKind.FLATTEN)
_FLATTEN_METHODS = fx_methods(OpKind.FLATTEN)
_NORM_MODULES = fx_modules(OpKind.BATCH_NORM)
_LAYER_MODULES = fx_modules(OpKind.LAYER)


def _trace(model: nn.Module) -> tuple[fx.GraphModule | None, str | None]:
    try:
        return fx.symbolic_trace(model), None
    except Exception as exc:  # torch.fx raises many types for code it cannot trace
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        return None, f"{type(exc).__name__}: {first}" if first else type(exc).__name__


class _Walker:
    """Answers questions about one traced graph."""

    def __init__(self, traced: fx.GraphModule) -> None:
        self.modules = dict(traced.named_modules())
        self.calls = Counter(n.target for n in traced.graph.nodes if n.op == "call_module")

    def module(self, node: fx.Node) -> nn.Module | None:
        """The module a ``call_module`` node calls (once only in the whole graph), else None."""
        if node.op != "call_module" or self.calls[node.target] != 1:
            return None
        return self.modules.get(str(node.target))

    def _transparent(self, node: fx.Node) -> bool:
        if node.op == "call_module":
            return isinstance(self.modules.get(str(node.target)), _TRANSPARENT_MODULES)
        if node.op == "call_function":
            return node.target in _TRANSPARENT_FUNCTIONS
        return node.op == "call_method" and node.target in _TRANSPARENT_METHODS

    def readers(self, node: fx.Node) -> list[fx.Node] | None:
        """The nodes that read ``node``'s values, through transparent operations; None when one of them
        reads it otherwise than as its first argument (so it is not a plain per-channel reader)."""
        out: list[fx.Node] = []
        for user in node.users:
            if user.op == "call_method" and user.target in _SHAPE_METHODS:
                continue
            if user.op == "call_function" and user.target is getattr and user.args[1:] == ("shape",):
                continue
            if not user.args or user.args[0] is not node or node in _flat_args(user.args[1:], user.kwargs):
                return None
            if self._transparent(user):
                inner = self.readers(user)
                if inner is None:
                    return None
                out.extend(inner)
            else:
                out.append(user)
        return out

    def is_per_channel(self, node: fx.Node, *, pooling: bool) -> bool:
        """An activation (or, with ``pooling``, a 2-D pooling) that maps an all-zero channel of its first
        argument to an all-zero channel."""
        extra = _flat_args(node.args[1:], node.kwargs)
        if any(isinstance(a, fx.Node) for a in extra):
            return False  # a computed argument (a bound, a kernel size): not a plain per-channel operation
        if node.op == "call_module":
            m = self.modules.get(str(node.target))
            if isinstance(m, nn.Hardtanh):  # also ReLU6; before the table's membership, which holds Hardtanh
                return m.min_val <= 0 <= m.max_val
            if isinstance(m, (nn.MaxPool2d, nn.AdaptiveMaxPool2d)) and m.return_indices:
                return False
            return isinstance(m, _ACTIVATION_MODULES + (_POOL_MODULES if pooling else ()))
        if node.op == "call_function":
            if node.target is F.hardtanh:  # before the table's membership, which holds F.hardtanh
                low = node.kwargs.get("min_val", node.args[1] if len(node.args) > 1 else -1.0)
                high = node.kwargs.get("max_val", node.args[2] if len(node.args) > 2 else 1.0)
                return low <= 0 <= high  # type: ignore[operator]
            if node.kwargs.get("return_indices"):
                return False
            return node.target in _ACTIVATION_FUNCTIONS or (pooling and node.target in _POOL_FUNCTIONS)
        return node.op == "call_method" and node.target in _ACTIVATION_METHODS

    def is_flatten(self, node: fx.Node) -> bool:
        """A flatten of a ``(N, C, H, W)`` tensor to ``(N, C*H*W)``."""
        if node.op == "call_module":
            m = self.modules.get(str(node.target))
            return isinstance(m, _FLATTEN_MODULES) and m.start_dim == 1 and m.end_dim == -1
        if not ((node.op == "call_function" and node.target in _FLATTEN_FUNCTIONS)
                or (node.op == "call_method" and node.target in _FLATTEN_METHODS)):
            return False
        rest = _flat_args(node.args[1:], node.kwargs)
        if any(isinstance(a, fx.Node) and not _is_batch_size(a, node.args[0]) for a in rest):
            return False
        if node.target in ("view", "reshape"):  # view(N, -1): the target shape, not the dimensions
            if node.kwargs:
                return False
            shape = node.args[1] if len(node.args) == 2 and isinstance(node.args[1], (tuple, list)) else node.args[1:]
            return len(shape) == 2 and shape[1] == -1 and (
                isinstance(shape[0], fx.Node) and _is_batch_size(shape[0], node.args[0])
            )
        start = node.kwargs.get("start_dim", node.args[1] if len(node.args) > 1 else 0)
        end = node.kwargs.get("end_dim", node.args[2] if len(node.args) > 2 else -1)
        return start == 1 and end == -1

    def layer(self, node: fx.Node, *, flat: bool) -> bool:
        """A Conv2d of one group with zero padding (on a 4-D input) or a Linear (on a flattened one) called once."""
        m = self.module(node)
        if isinstance(m, nn.Conv2d):  # other padding modes export as a Pad the channel cannot cross
            return not flat and m.groups == 1 and m.padding_mode == "zeros"
        return isinstance(m, nn.Linear) and flat

    def removable(self, node: fx.Node, module: nn.Module) -> bool:
        """Whether the filters of the layer called by ``node`` can be removed (module docstring)."""
        if isinstance(module, nn.Conv2d) and module.groups != 1:
            return False
        flat = isinstance(module, nn.Linear)
        tensor = node
        readers = self.readers(tensor)
        norm = self.module(readers[0]) if readers and len(readers) == 1 else None
        if isinstance(norm, _NORM_MODULES) and norm.affine:
            tensor = readers[0]  # folded into the layer on export; compress() zeroes its pruned channels
            readers = self.readers(tensor)
        while readers is not None and len(readers) == 1:
            (reader,) = readers
            if self.layer(reader, flat=flat):
                return True
            if self.is_per_channel(reader, pooling=not flat):
                tensor = reader
            elif not flat and self.is_flatten(reader):
                # the export removes channels across a flatten only when Linear layers alone read it
                after = self.readers(reader)
                return bool(after) and all(self.layer(r, flat=True) for r in after)  # type: ignore[union-attr]
            else:
                return False
            readers = self.readers(tensor)
        # several readers (or none): each must be a layer, as the export reads a fan-out
        return bool(readers) and all(self.layer(r, flat=flat) for r in readers)  # type: ignore[union-attr]


def _flat_args(args: tuple, kwargs: Mapping[str, object]) -> list[object]:
    out: list[object] = []
    fx.node.map_aggregate((args, dict(kwargs)), out.append)
    return out


def _is_batch_size(node: fx.Node, tensor: object) -> bool:
    """``tensor.size(0)`` or ``tensor.shape[0]``."""
    if node.op == "call_method" and node.target == "size" and node.args[0] is tensor:
        return node.args[1:] == (0,) or node.kwargs == {"dim": 0}
    if node.op == "call_function" and node.target is operator.getitem and node.args[1] == 0:
        source = node.args[0]
        return (isinstance(source, fx.Node) and source.op == "call_function" and source.target is getattr
                and source.args == (tensor, "shape"))
    return False


def channel_graph(model: nn.Module) -> ChannelGraph:
    """Traces ``model`` with torch.fx and finds, for its Conv2d and Linear layers, the batch norm that
    reads each one's output and the layers whose filters can be removed (see the module docstring).

    ``model`` is not modified. A model torch.fx cannot trace gives an empty :class:`ChannelGraph` whose
    ``untraceable`` says why.
    """
    traced, error = _trace(model)
    if traced is None:
        return ChannelGraph(untraceable=error)
    walker = _Walker(traced)
    batchnorms: dict[str, str] = {}
    removable: set[str] = set()
    for node in traced.graph.nodes:
        module = walker.module(node)
        if not isinstance(module, _LAYER_MODULES):
            continue
        name = str(node.target)
        readers = walker.readers(node)
        if readers is not None and len(readers) == 1:
            norm = walker.module(readers[0])
            if (
                readers[0] in node.users  # directly, not through dropout
                and isinstance(norm, _NORM_MODULES)
                and norm.affine
                and norm.num_features == module.weight.shape[0]
            ):
                batchnorms[name] = str(readers[0].target)
        if walker.removable(node, module):
            removable.add(name)
    return ChannelGraph(batchnorms=batchnorms, removable=frozenset(removable))
