"""Editing an exported ONNX graph: an index over its tensors, and removal of all-zero filters.

Structured pruning leaves whole output filters of a Conv (or rows of a Gemm) at zero; such a filter
outputs a constant (its bias). :func:`remove_zero_filters` deletes it from the layer and deletes the
matching input channel of every layer that reads it, folding the constant into that layer's bias,
wherever this is exact:

* between the two layers only per-channel operations (Relu, Clip, LeakyRelu, MaxPool, global or
  unpadded average pooling, spatial means) and a final Flatten/Reshape before a Gemm: the ONNX
  spellings of the one table of such operations,
  :data:`~moo_compress.compress.channel_ops.CHANNEL_OPS`, which the torch.fx analysis that decides
  ``removable_only`` pruning (:mod:`moo_compress.compress.channels`) reads too;
* every reader is a Conv (one group) or a Gemm; none is an Add, a Concat or a graph output, so no
  filter is removed across a residual addition;
* the constant reaching a padded Conv is zero (a non-zero constant would meet the zero padding at
  the image border, where no bias can stand for it), otherwise the filter is kept.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import helper, numpy_helper

from moo_compress.compress.channel_ops import OpKind, onnx_ops

__all__ = ["GraphIndex", "KeptChannels", "remove_zero_filters", "drop_unused_initializers", "attribute"]

# The rule (compress.channel_ops), in ONNX spellings: operations that act on each channel alone and map a
# constant channel to a constant (_channel_map computes it), and the flatten before a Gemm.
_PER_CHANNEL = onnx_ops(OpKind.ACTIVATION, OpKind.POOLING)
_FLATTEN = onnx_ops(OpKind.FLATTEN)


class GraphIndex:
    """Initializers (as numpy arrays) and the producer and readers of every tensor of a graph.

    Call :meth:`refresh` after adding or removing nodes.
    """

    def __init__(self, model: onnx.ModelProto) -> None:
        self.model = model
        self.graph = model.graph
        self.refresh()

    def refresh(self) -> None:
        """Rebuilds the maps from the graph."""
        self.initializers = {t.name: t for t in self.graph.initializer}
        self.readers: dict[str, list[onnx.NodeProto]] = defaultdict(list)
        self.producer: dict[str, onnx.NodeProto] = {}
        for node in self.graph.node:
            for name in node.input:
                if name:
                    self.readers[name].append(node)
            for name in node.output:
                self.producer[name] = node
        self.outputs = {o.name for o in self.graph.output}

    def array(self, name: str) -> np.ndarray | None:
        """The initializer ``name`` as a numpy array, or None."""
        tensor = self.initializers.get(name)
        return None if tensor is None else numpy_helper.to_array(tensor)

    def set_array(self, name: str, value: np.ndarray) -> None:
        """Replaces (or adds) the initializer ``name``."""
        tensor = numpy_helper.from_array(np.array(value, order="C"), name)  # (ascontiguousarray makes 0-d 1-d)
        old = self.initializers.get(name)
        if old is not None:
            old.CopyFrom(tensor)
        else:
            self.graph.initializer.append(tensor)
            self.initializers[name] = self.graph.initializer[-1]

    def add_constant(self, name: str, value: np.ndarray) -> str:
        """Adds an initializer under a fresh name derived from ``name``; returns the name used."""
        unique, i = name, 0
        while unique in self.initializers or unique in self.producer:
            i += 1
            unique = f"{name}_{i}"
        self.set_array(unique, value)
        return unique


def attribute(node: onnx.NodeProto, name: str, default: object = None) -> object:
    """The value of attribute ``name`` of ``node``, or ``default``."""
    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


@dataclass
class KeptChannels:
    """Which channels of each layer's weight survived :func:`remove_zero_filters` (index arrays).

    Indices count in the layer's original (PyTorch) weight: rows are output filters or features,
    columns input channels (Conv) or input features (Gemm).

    Attributes:
        rows: Weight initializer name -> kept rows.
        columns: Weight initializer name -> kept columns.
        removed: Number of filters removed.
        kept_nonzero: Number of all-zero filters kept because removing them would not be exact.
    """

    rows: dict[str, np.ndarray] = field(default_factory=dict)
    columns: dict[str, np.ndarray] = field(default_factory=dict)
    removed: int = 0
    kept_nonzero: int = 0


def _spatial_shapes(model: onnx.ModelProto) -> dict[str, tuple[int, ...]]:
    inferred = onnx.shape_inference.infer_shapes(model)
    shapes = {}
    for value in list(inferred.graph.value_info) + list(inferred.graph.output):
        dims = value.type.tensor_type.shape.dim
        shapes[value.name] = tuple(d.dim_value if d.HasField("dim_value") else -1 for d in dims)
    return shapes


def _channel_map(node: onnx.NodeProto, values: np.ndarray) -> np.ndarray | None:
    """Constant channel values after a per-channel operation, or None when it does not keep them constant."""
    op = node.op_type
    if op == "Relu":
        return np.maximum(values, 0)
    if op == "LeakyRelu":
        alpha = float(attribute(node, "alpha", 0.01))
        return np.where(values >= 0, values, alpha * values)
    if op == "Clip":
        return None  # its bounds are inputs; handled by the caller, which can read them
    if op in ("MaxPool", "GlobalAveragePool", "GlobalMaxPool", "ReduceMax"):
        return values
    if op == "AveragePool":
        padded = any(attribute(node, "pads", []) or []) or attribute(node, "auto_pad", b"NOTSET") not in (
            b"NOTSET", b"VALID", "NOTSET", "VALID")
        return values if not padded or not attribute(node, "count_include_pad", 0) or not values.any() else None
    if op == "ReduceMean":
        return values
    return None


def _reduces_channels(node: onnx.NodeProto, index: GraphIndex) -> bool:
    if node.op_type not in ("ReduceMean", "ReduceMax"):
        return False
    axes = attribute(node, "axes")
    if axes is None and len(node.input) > 1:
        axes = index.array(node.input[1])
    if axes is None:
        return True
    return any(int(a) in (0, 1, -3, -4) for a in np.atleast_1d(axes))


def _follow(index: GraphIndex, tensor: str, values: np.ndarray) -> tuple[str, np.ndarray, list[str]] | None:
    """Follows ``tensor`` through single-reader per-channel operations.

    Returns:
        ``(last tensor, the constant channel values there, the tensors passed)``, or None when an
        operation does not keep a constant channel constant.
    """
    passed = []
    while len(index.readers.get(tensor, [])) == 1 and tensor not in index.outputs:
        node = index.readers[tensor][0]
        if node.op_type not in _PER_CHANNEL or node.input[0] != tensor or _reduces_channels(node, index):
            break
        if node.op_type == "Clip":
            low = index.array(node.input[1]) if len(node.input) > 1 and node.input[1] else None
            high = index.array(node.input[2]) if len(node.input) > 2 and node.input[2] else None
            if (len(node.input) > 1 and node.input[1] and low is None) or (
                len(node.input) > 2 and node.input[2] and high is None
            ):
                return None
            values = np.clip(values, -np.inf if low is None else low, np.inf if high is None else high)
        else:
            mapped = _channel_map(node, values)
            if mapped is None:
                return None
            values = mapped
        passed.append(tensor)
        tensor = node.output[0]
    return tensor, values, passed


def _is_layer(node: onnx.NodeProto, index: GraphIndex) -> bool:
    """A Conv of one group or a plain Gemm (alpha = beta = 1, A not transposed) with a constant weight."""
    if len(node.input) < 2 or node.input[1] not in index.initializers:
        return False
    if node.op_type == "Conv":
        return int(attribute(node, "group", 1)) == 1
    if node.op_type == "Gemm":
        return (not attribute(node, "transA", 0) and float(attribute(node, "alpha", 1.0)) == 1.0
                and float(attribute(node, "beta", 1.0)) == 1.0)
    return False


def _is_padded(node: onnx.NodeProto) -> bool:
    auto = attribute(node, "auto_pad", b"NOTSET")
    auto = auto.decode() if isinstance(auto, bytes) else auto
    return auto not in ("NOTSET", "VALID") or any(attribute(node, "pads", []) or [])


@dataclass
class _Reader:
    node: onnx.NodeProto  # the Conv or Gemm
    weight: str
    # per channel of the producer: the columns of the reader's weight it feeds
    columns: Callable[[np.ndarray], np.ndarray]
    padded: bool
    flat: str | None = None  # the Flatten/Reshape output the Gemm reads, if any


def _readers(index: GraphIndex, tensor: str, shapes: dict[str, tuple[int, ...]]) -> list[_Reader] | None:
    """The layers reading ``tensor`` (N, C, H, W), each with how channels map to its weight's columns,
    or None if any reader is something else."""
    if tensor in index.outputs:
        return None
    out = []
    for node in index.readers.get(tensor, []):
        if node.op_type == "Conv" and node.input[0] == tensor:
            if not _is_layer(node, index):
                return None
            out.append(_Reader(node, node.input[1], lambda c: np.asarray(c)[:, None], _is_padded(node)))
            continue
        if node.op_type == "Gemm" and node.input[0] == tensor and len(shapes.get(tensor, ())) == 2:
            if not _is_layer(node, index):
                return None
            out.append(_Reader(node, node.input[1], lambda c: np.asarray(c)[:, None], False))
            continue
        if node.op_type in _FLATTEN and node.input[0] == tensor:
            shape = shapes.get(tensor)
            flat = node.output[0]
            flat_shape = shapes.get(flat)
            if not shape or len(shape) != 4 or min(shape[1:]) < 1 or not flat_shape or len(flat_shape) != 2:
                return None
            per_channel = shape[2] * shape[3]
            if flat_shape[1] != shape[1] * per_channel or flat in index.outputs:
                return None
            for gemm in index.readers.get(flat, []):
                if gemm.op_type != "Gemm" or gemm.input[0] != flat or not _is_layer(gemm, index):
                    return None
                out.append(_Reader(gemm, gemm.input[1],
                                   lambda c, k=per_channel: np.asarray(c)[:, None] * k + np.arange(k)[None, :],
                                   False, flat))
            if not index.readers.get(flat):
                return None
            continue
        return None
    return out or None


def _input_columns(weight: np.ndarray, node: onnx.NodeProto) -> int:
    """Number of input columns of a Conv or Gemm weight as stored."""
    if node.op_type == "Conv":
        return weight.shape[1]
    return weight.shape[1] if attribute(node, "transB", 0) else weight.shape[0]


def _take_columns(weight: np.ndarray, node: onnx.NodeProto, keep: np.ndarray) -> np.ndarray:
    if node.op_type == "Conv" or attribute(node, "transB", 0):
        return weight[:, keep]
    return weight[keep]


def _column_sums(weight: np.ndarray, node: onnx.NodeProto, columns: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Per output of the reader: sum over ``columns`` of weight x the constant arriving there."""
    if node.op_type == "Conv":  # columns are input channels; a constant channel meets the whole kernel
        return np.einsum("oc,c->o", weight[:, columns].sum(axis=(2, 3)), values)
    w = weight[:, columns] if attribute(node, "transB", 0) else weight[columns].T
    return w @ values


def remove_zero_filters(
    model: onnx.ModelProto,
    *,
    input_value: Callable[[str, np.ndarray], np.ndarray] | None = None,
) -> KeptChannels:
    """Removes every all-zero filter (Conv) or row (Gemm) whose constant output folds exactly (module docstring).

    Edits ``model`` in place and leaves it without stale ``value_info``.

    Args:
        model: A graph with batch norms folded into the convolutions.
        input_value: ``(reader weight name, constant values) -> the values the reader really sees``,
            for readers that round their input (activation quantization); identity when None.

    Returns:
        The kept channels of every weight that changed.
    """
    index = GraphIndex(model)
    shapes = _spatial_shapes(model)
    kept = KeptChannels()
    for node in list(model.graph.node):
        if _is_layer(node, index):
            _remove_layer_zero_filters(index, node, shapes=shapes, kept=kept, input_value=input_value)
    if kept.removed:
        del model.graph.value_info[:]
        drop_unused_initializers(model)
    return kept


@dataclass
class _ZeroRows:
    """A layer with some, not all, output rows zero and one constant bias per output."""

    weight: np.ndarray  # rows are outputs (a Gemm weight stored (in, out) is transposed)
    rows_last: bool  # the weight is stored (in, out)
    zero: np.ndarray  # per row: all zero
    bias_name: str | None
    bias: np.ndarray


def _zero_rows(index: GraphIndex, node: onnx.NodeProto) -> _ZeroRows | None:
    """The layer's weight and bias when some but not all of its rows are zero; None otherwise."""
    weight = index.array(node.input[1])
    rows_last = node.op_type == "Gemm" and not attribute(node, "transB", 0)  # a Gemm weight stored (in, out)
    if rows_last:
        weight = weight.T
    zero = ~weight.reshape(weight.shape[0], -1).any(axis=1)
    if not zero.any() or zero.all():
        return None
    bias_name = node.input[2] if len(node.input) > 2 and node.input[2] else None
    bias = index.array(bias_name) if bias_name else np.zeros(weight.shape[0], np.float32)
    if bias is None or bias.shape != (weight.shape[0],):  # a computed or broadcast bias: leave the layer
        return None
    return _ZeroRows(weight, rows_last, zero, bias_name, bias)


def _remove_layer_zero_filters(
    index: GraphIndex,
    node: onnx.NodeProto,
    *,
    shapes: dict[str, tuple[int, ...]],
    kept: KeptChannels,
    input_value: Callable[[str, np.ndarray], np.ndarray] | None,
) -> None:
    """Removes one layer's foldable all-zero filters and the readers' columns they feed; records it in ``kept``."""
    layer = _zero_rows(index, node)
    if layer is None:
        return
    followed = _follow(index, node.output[0], layer.bias.astype(np.float64))
    if followed is None:
        return
    tensor, constants, passed = followed
    readers = _readers(index, tensor, shapes)
    if readers is None:
        return
    dead = np.flatnonzero(layer.zero)
    seen = {r.weight: input_value(r.weight, constants) if input_value else constants for r in readers}
    # a constant that meets zero padding cannot be folded into a bias: keep such filters
    foldable = np.ones(dead.size, dtype=bool)
    for r in readers:
        if r.padded:
            foldable &= seen[r.weight][dead] == 0
    kept.kept_nonzero += int((~foldable).sum())
    dead = dead[foldable]
    if dead.size == 0:
        return
    alive = np.setdiff1d(np.arange(layer.weight.shape[0]), dead)
    for r in readers:
        _fold_into_reader(index, r, seen[r.weight][dead], dead=dead, kept=kept)
        if r.flat is not None:
            _resize_flatten(index, r, alive.size, shapes)
    index.set_array(node.input[1], layer.weight[alive].T if layer.rows_last else layer.weight[alive])
    if layer.bias_name:
        index.set_array(layer.bias_name, layer.bias[alive])
    previous = kept.rows.get(node.input[1])
    kept.rows[node.input[1]] = alive if previous is None else previous[alive]
    kept.removed += int(dead.size)
    for name in [node.output[0], *passed, tensor]:
        if name in shapes:
            shapes[name] = (shapes[name][0], alive.size, *shapes[name][2:])


def _fold_into_reader(index: GraphIndex, reader: _Reader, values: np.ndarray, *, dead: np.ndarray,
                      kept: KeptChannels) -> None:
    """Drops the reader's columns fed by the ``dead`` filters and adds what their constant ``values``
    contributed to the reader's bias; records the kept columns in ``kept``."""
    w = index.array(reader.weight)
    cols = reader.columns(dead).reshape(-1)
    per = reader.columns(dead).shape[1]
    arriving = np.repeat(values, per)
    shift = _column_sums(w.astype(np.float64), reader.node, cols, arriving)
    keep_cols = np.setdiff1d(np.arange(_input_columns(w, reader.node)), cols)
    index.set_array(reader.weight, _take_columns(w, reader.node, keep_cols))
    previous = kept.columns.get(reader.weight)
    kept.columns[reader.weight] = keep_cols if previous is None else previous[keep_cols]
    if np.any(shift != 0):
        _add_to_bias(index, reader, shift)


def _add_to_bias(index: GraphIndex, reader: _Reader, shift: np.ndarray) -> None:
    """Adds ``shift`` to the reader's bias, giving it one when it has none."""
    reader_bias = reader.node.input[2] if len(reader.node.input) > 2 and reader.node.input[2] else None
    if reader_bias is None:
        name = index.add_constant(f"{reader.weight}_bias", shift.astype(np.float32))
        while len(reader.node.input) < 3:
            reader.node.input.append("")
        reader.node.input[2] = name
    else:
        index.set_array(reader_bias, (index.array(reader_bias) + shift).astype(np.float32))


def drop_unused_initializers(model: onnx.ModelProto) -> None:
    """Removes the initializers no node reads."""
    used = {name for n in model.graph.node for name in n.input} | {o.name for o in model.graph.output}
    keep = [t for t in model.graph.initializer if t.name in used]
    del model.graph.initializer[:]
    model.graph.initializer.extend(keep)


def _resize_flatten(index: GraphIndex, reader: _Reader, channels: int, shapes: dict[str, tuple[int, ...]]) -> None:
    """Makes the Flatten/Reshape before a Gemm a ``Flatten(axis=1)``, whose output follows the new
    channel count (a Reshape's target shape may be computed, or shared with other Reshapes)."""
    node = index.producer[reader.flat]
    source = shapes[node.input[0]]
    if node.op_type == "Reshape":
        node.op_type = "Flatten"
        del node.input[1:]
        del node.attribute[:]
        node.attribute.append(helper.make_attribute("axis", 1))
    shapes[reader.flat] = (shapes[reader.flat][0], channels * source[2] * source[3])
