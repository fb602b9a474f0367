"""The channel-removal rule, written once: which operations a removed filter's channel may pass.

A pruned filter outputs an all-zero (after its batch norm) or constant channel. The deployed graph can
drop that channel only when everything between the layer and the layers that read it acts on each
channel alone. :data:`CHANNEL_OPS` lists those operations once, each with its **torch.fx** spellings
(modules, functions, tensor methods) and its **ONNX** spellings (operator types after
``torch.onnx.export``) side by side. Two walkers read it:

* :mod:`moo_compress.compress.channels` (torch.fx, before export) decides which layers' filters are
  removable, so that ``PruneConfig(removable_only=True)`` prunes only those;
* :mod:`moo_compress.deploy.graph` (ONNX, after export) removes the filters from the file.

Anything that is not in the table blocks removal: an addition (a residual block), a concatenation, a
multiplication, GELU or SiLU, a graph output. Conditions on an operation's arguments (a Hardtanh whose
range holds 0, unpadded average pooling, a flatten to ``(batch, features)``) are checked by each walker,
which reads the arguments in its own graph's spelling.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["OpKind", "ChannelOp", "CHANNEL_OPS", "fx_modules", "fx_functions", "fx_methods", "onnx_ops"]


class OpKind(enum.Enum):
    """What an operation does to a channel on its way from a layer to the layers that read it."""

    #: Gone from an inference graph (dropout, identity): the walk goes on through its readers.
    VANISHES = "vanishes"
    #: Reads a tensor's shape, never its values (``x.size(0)`` of a flatten).
    SHAPE_ONLY = "shape only"
    #: Maps each channel alone, an all-zero (constant) channel to an all-zero (constant) one.
    ACTIVATION = "activation"
    #: 2-D pooling: per channel, as above; not after a flatten.
    POOLING = "pooling"
    #: ``(N, C, H, W) -> (N, C*H*W)`` before a Linear (Gemm): a channel becomes ``H*W`` features.
    FLATTEN = "flatten"
    #: Folded into the layer before it on export (affine parameters needed: compress() zeroes them).
    BATCH_NORM = "batch norm"
    #: Where the walk ends: a layer whose input channels (columns) are dropped with the filter.
    LAYER = "layer"


@dataclass(frozen=True)
class ChannelOp:
    """One operation that does not block channel removal, in both spellings.

    Attributes:
        name: What it is, for people.
        kind: What it does to a channel.
        modules: torch.fx ``call_module`` targets (module classes; subclasses count).
        functions: torch.fx ``call_function`` targets.
        methods: torch.fx ``call_method`` names.
        onnx: ONNX operator types it exports to (none when it leaves no node in an inference graph).
    """

    name: str
    kind: OpKind
    modules: tuple[type[nn.Module], ...] = ()
    functions: tuple[Callable[..., object], ...] = ()
    methods: tuple[str, ...] = ()
    onnx: tuple[str, ...] = ()


_DROPOUT_MODULES = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout)
_DROPOUT_FUNCTIONS = (F.dropout, F.dropout1d, F.dropout2d, F.dropout3d, F.alpha_dropout, torch.dropout)

#: The rule: every operation a removed channel may pass, torch.fx and ONNX spellings side by side.
CHANNEL_OPS: tuple[ChannelOp, ...] = (
    ChannelOp("identity and dropout", OpKind.VANISHES, (nn.Identity, *_DROPOUT_MODULES), _DROPOUT_FUNCTIONS,
              ("contiguous",)),
    ChannelOp("shape of a tensor", OpKind.SHAPE_ONLY, methods=("size", "dim")),
    ChannelOp("ReLU", OpKind.ACTIVATION, (nn.ReLU,), (F.relu, F.relu_, torch.relu, torch.relu_), ("relu", "relu_"),
              ("Relu",)),
    # nn.Hardtanh (ReLU6 is one) and F.hardtanh only with min <= 0 <= max: the walkers check the bounds
    ChannelOp("ReLU6 and Hardtanh", OpKind.ACTIVATION, (nn.ReLU6, nn.Hardtanh), (F.relu6, F.hardtanh),
              onnx=("Clip",)),
    ChannelOp("LeakyReLU", OpKind.ACTIVATION, (nn.LeakyReLU,), (F.leaky_relu, F.leaky_relu_), onnx=("LeakyRelu",)),
    ChannelOp("max pooling", OpKind.POOLING, (nn.MaxPool2d, nn.AdaptiveMaxPool2d),
              (F.max_pool2d, torch.max_pool2d, F.adaptive_max_pool2d), onnx=("MaxPool", "GlobalMaxPool", "ReduceMax")),
    ChannelOp("average pooling", OpKind.POOLING, (nn.AvgPool2d, nn.AdaptiveAvgPool2d),
              (F.avg_pool2d, F.adaptive_avg_pool2d), onnx=("AveragePool", "GlobalAveragePool", "ReduceMean")),
    ChannelOp("flatten", OpKind.FLATTEN, (nn.Flatten,), (torch.flatten,), ("flatten", "view", "reshape"),
              ("Flatten", "Reshape")),
    ChannelOp("batch norm", OpKind.BATCH_NORM, (nn.modules.batchnorm._BatchNorm,)),
    ChannelOp("convolution", OpKind.LAYER, (nn.Conv2d,), onnx=("Conv",)),
    ChannelOp("linear", OpKind.LAYER, (nn.Linear,), onnx=("Gemm",)),
)


def _rows(kinds: tuple[OpKind, ...]) -> list[ChannelOp]:
    return [op for op in CHANNEL_OPS if op.kind in kinds]


def fx_modules(*kinds: OpKind) -> tuple[type[nn.Module], ...]:
    """The module classes of the operations of ``kinds`` (for ``isinstance``)."""
    return tuple(m for op in _rows(kinds) for m in op.modules)


def fx_functions(*kinds: OpKind) -> frozenset[Callable[..., object]]:
    """The torch.fx ``call_function`` targets of the operations of ``kinds``."""
    return frozenset(f for op in _rows(kinds) for f in op.functions)


def fx_methods(*kinds: OpKind) -> frozenset[str]:
    """The torch.fx ``call_method`` names of the operations of ``kinds``."""
    return frozenset(m for op in _rows(kinds) for m in op.methods)


def onnx_ops(*kinds: OpKind) -> frozenset[str]:
    """The ONNX operator types of the operations of ``kinds``."""
    return frozenset(o for op in _rows(kinds) for o in op.onnx)
