"""QuantizeLinear/DequantizeLinear (QDQ) nodes for the layers a plan quantizes weights and inputs of.

Each such layer of an exported float graph gets (:func:`insert_qdq`):

* its input rounded onto the plan's own activation grid (the calibrated per-tensor uint8 grid the
  compressed PyTorch model fake-quantizes with): ``QuantizeLinear -> DequantizeLinear``, after a Clip
  to the grid's top code when the plan uses fewer than 8 bits;
* its weight stored as the plan's integer codes (int8 for symmetric grids, uint8 for affine ones;
  2-7-bit codes are small int8 values) with ``DequantizeLinear`` on the plan's scales. Batch norm
  folded into the layer by the exporter only multiplies each output channel's scale (a negative
  factor mirrors the codes), so the codes stay the plan's;
* its bias as int32 on the scale ``input scale x weight scale`` (what int8 kernels accumulate in).

ONNX Runtime runs a layer as one int8 kernel (``QLinearConv``, ``QGemm``) only when its output is
rounded too, and a residual addition as ``QLinearAdd`` only when its inputs and output are, so
:func:`tensors_to_round` names those tensors and :func:`round_tensors` rounds them: on the plan's grid
where one already rounds the tensor, on the grid of the tensor a MaxPool or reshape alone turns it into
(:func:`inherited_grids`: rounding commutes with them), else on an 8-bit grid observed on calibration
images. Those are the only roundings the PyTorch model does not do.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import helper

from moo_compress.compress.quantize import ActivationQuant
from moo_compress.deploy.graph import GraphIndex, attribute, drop_unused_initializers
from moo_compress.errors import ConfigError

__all__ = [
    "WeightCodes",
    "QdqLayer",
    "insert_qdq",
    "tensors_to_round",
    "planned_tensors",
    "inherited_grids",
    "round_tensors",
]

_INT32_MAX = 2**31 - 1


@dataclass(frozen=True)
class WeightCodes:
    """A layer's weight as the plan stores it: integer codes on a per-row grid.

    Attributes:
        codes: Integer codes shaped like the weight in the graph (rows = output channels).
        scale: float32 scale of each row.
        zero_point: Integer zero point of each row.
        qmin: Smallest code of the grid.
        qmax: Largest code of the grid.
    """

    codes: np.ndarray
    scale: np.ndarray
    zero_point: np.ndarray
    qmin: int
    qmax: int

    def dequantize(self) -> np.ndarray:
        """float64 weight ``(codes - zero_point) * scale``."""
        shape = (-1,) + (1,) * (self.codes.ndim - 1)
        shifted = self.codes.astype(np.float64) - self.zero_point.reshape(shape)
        return shifted * self.scale.astype(np.float64).reshape(shape)


@dataclass(frozen=True)
class QdqLayer:
    """One layer to quantize in the graph.

    Attributes:
        name: Module name (for messages).
        weight: Name of the weight initializer the layer's Conv/Gemm reads.
        activation: The plan's grid of the layer's input.
        weight_codes: The plan's weight codes, or None to keep the float weight (16-bit weights).
    """

    name: str
    weight: str
    activation: ActivationQuant
    weight_codes: WeightCodes | None


def _layer_node(index: GraphIndex, layer: QdqLayer) -> onnx.NodeProto:
    nodes = [n for n in index.readers.get(layer.weight, [])
             if n.op_type in ("Conv", "Gemm") and n.input[1] == layer.weight]
    if len(nodes) != 1:
        raise ConfigError(
            f"layer {layer.name}: its weight {layer.weight!r} is not read by exactly one Conv or Gemm of the exported "
            "graph, so its quantization cannot be placed; export the plan without activation_bits"
        )
    return nodes[0]


def _fold_factors(graph_weight: np.ndarray, codes: WeightCodes, name: str) -> np.ndarray:
    """Per row, the factor the exporter's batch-norm folding multiplied the plan's weight by."""
    plan = codes.dequantize().reshape(codes.codes.shape[0], -1)
    w = graph_weight.astype(np.float64).reshape(plan.shape[0], -1)
    norm = np.einsum("rn,rn->r", plan, plan)
    factor = np.where(norm > 0, np.einsum("rn,rn->r", w, plan) / np.where(norm > 0, norm, 1), 1.0)
    error = np.abs(plan * factor[:, None] - w).max(initial=0.0)
    if error > 1e-4 * max(np.abs(w).max(initial=0.0), 1e-12):
        raise ConfigError(
            f"layer {name}: the exported weight is not the plan's grid times a per-channel factor "
            f"(largest difference {error:.3g}); the graph folded something else into it"
        )
    return factor


def _weight_tensors(weight: np.ndarray, codes: WeightCodes, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(codes, scales, zero points) of the weight as the graph holds it (batch norm folded)."""
    factor = _fold_factors(weight, codes, name)
    shape = (-1,) + (1,) * (codes.codes.ndim - 1)
    flip = (factor < 0).reshape(shape)
    mirror = codes.qmin + codes.qmax  # (q - z) * s * f == (m - q - (m - z)) * s * |f|
    q = np.where(flip, mirror - codes.codes, codes.codes)
    z = np.where(factor < 0, mirror - codes.zero_point, codes.zero_point)
    q = np.where((factor == 0).reshape(shape), z.reshape(shape), q)  # a batch norm scale of 0 zeroes the row
    dtype = np.int8 if codes.qmin < 0 else np.uint8
    scale = (codes.scale.astype(np.float64) * np.abs(factor)).astype(np.float32)
    scale[scale == 0] = np.float32(1.0)
    return q.astype(dtype), scale, z.astype(dtype)


class _Builder:
    def __init__(self, index: GraphIndex) -> None:
        self.index = index
        self.nodes: list[onnx.NodeProto] = []
        self.shared: dict[tuple, str] = {}

    def _fresh(self, base: str) -> str:
        unique, i = base, 0
        taken = self.index.initializers.keys() | self.index.producer.keys() | {o for n in self.nodes for o in n.output}
        while unique in taken:
            i += 1
            unique = f"{base}_{i}"
        return unique

    def fake_quantize(self, tensor: str, grid: ActivationQuant) -> str:
        """The tensor rounded onto ``grid`` (shared by every reader asking for the same grid)."""
        key = (tensor, grid.bits, grid.scale, grid.zero_point)
        if key in self.shared:
            return self.shared[key]
        scale = self.index.add_constant(f"{tensor}_scale", np.array(grid.scale, np.float32))
        zero = self.index.add_constant(f"{tensor}_zero_point", np.array(grid.zero_point, np.uint8))
        source = tensor
        qmax = 2**grid.bits - 1
        if qmax < 255:  # QuantizeLinear saturates at 255: clip to the grid's own top code first
            low = self.index.add_constant(f"{tensor}_low", np.array(-grid.zero_point * grid.scale, np.float32))
            high = self.index.add_constant(
                f"{tensor}_high", np.array((qmax - grid.zero_point) * grid.scale, np.float32))
            source = self._fresh(f"{tensor}_clipped")
            self.nodes.append(helper.make_node("Clip", [tensor, low, high], [source], name=f"{source}_Clip"))
        quantized = self._fresh(f"{tensor}_quantized")
        out = self._fresh(f"{tensor}_dequantized")
        self.nodes.append(helper.make_node("QuantizeLinear", [source, scale, zero], [quantized], name=f"{quantized}_Q"))
        self.nodes.append(helper.make_node("DequantizeLinear", [quantized, scale, zero], [out], name=f"{out}_DQ"))
        self.shared[key] = out
        return out

    def dequantize(self, base: str, codes: np.ndarray, scale: np.ndarray, zero: np.ndarray, axis: int) -> str:
        c = self.index.add_constant(f"{base}_quantized", codes)
        s = self.index.add_constant(f"{base}_scale", scale)
        z = self.index.add_constant(f"{base}_zero_point", zero)
        out = self._fresh(f"{base}_dequantized")
        self.nodes.append(helper.make_node("DequantizeLinear", [c, s, z], [out], name=f"{out}_DQ", axis=axis))
        return out


def insert_qdq(model: onnx.ModelProto, layers: list[QdqLayer]) -> None:
    """Adds the input and weight QDQ nodes of ``layers`` to ``model`` (in place; module docstring).

    Args:
        model: The float graph, batch norms folded, zero filters already removed.
        layers: The layers to quantize.

    Raises:
        ConfigError: if a layer cannot be found in the graph or its weight is not the plan's.
    """
    index = GraphIndex(model)
    build = _Builder(index)
    for layer in layers:
        node = _layer_node(index, layer)
        node.input[0] = build.fake_quantize(node.input[0], layer.activation)
        codes = layer.weight_codes
        if codes is None:
            continue
        weight = index.array(layer.weight)
        stored_transposed = node.op_type == "Gemm" and not attribute(node, "transB", 0)  # stored (in, out)
        q, scale, zero = _weight_tensors(weight.T if stored_transposed else weight, codes, layer.name)
        node.input[1] = build.dequantize(layer.weight, q.T if stored_transposed else q, scale, zero,
                                         1 if stored_transposed else 0)
        if len(node.input) > 2 and node.input[2]:
            bias = index.array(node.input[2])
            bias_scale = (np.float64(layer.activation.scale) * scale).astype(np.float32)
            bias_codes = np.rint(bias.astype(np.float64) / bias_scale)
            if np.abs(bias_codes).max(initial=0) < _INT32_MAX:
                node.input[2] = build.dequantize(node.input[2], bias_codes.astype(np.int32), bias_scale,
                                                 np.zeros(bias.shape, np.int32), 0)
    _insert_sorted(model, build.nodes)
    drop_unused_initializers(model)


def planned_tensors(model: onnx.ModelProto) -> dict[str, str]:
    """Tensor -> the DequantizeLinear output of the (first) plan grid :func:`insert_qdq` rounds it on."""
    index = GraphIndex(model)
    out: dict[str, str] = {}
    for node in model.graph.node:
        if node.op_type != "QuantizeLinear":
            continue
        dq = [r for r in index.readers.get(node.output[0], []) if r.op_type == "DequantizeLinear"]
        source = node.input[0]
        clip = index.producer.get(source)
        if clip is not None and clip.op_type == "Clip" and clip.name == f"{source}_Clip":
            source = clip.input[0]  # a grid of fewer than 8 bits rounds the Clip's input
        if dq:
            out.setdefault(source, dq[0].output[0])
    return out


def round_tensors(model: onnx.ModelProto, tensors: list[str], grids: dict[str, ActivationQuant]) -> None:
    """Makes every reader of each of ``tensors`` read it rounded: through the plan grid that already
    rounds it (:func:`planned_tensors`), else through a new QDQ pair on its grid in ``grids`` (in place)."""
    planned = planned_tensors(model)
    index = GraphIndex(model)
    build = _Builder(index)
    for tensor in tensors:
        if tensor in index.outputs:
            raise ConfigError(f"cannot round the graph output {tensor!r}")
        readers = [r for r in index.readers.get(tensor, []) if r.op_type not in ("QuantizeLinear", "Clip")]
        rounded = planned.get(tensor) or build.fake_quantize(tensor, grids[tensor])
        for reader in readers:
            for i, name in enumerate(reader.input):
                if name == tensor:
                    reader.input[i] = rounded
    _insert_sorted(model, build.nodes)


#: Operations that commute with rounding onto one grid (max and reshapes): a tensor they alone read is
#: rounded on the grid of their output, so ONNX Runtime runs them on int8 data.
_SAME_GRID = {"MaxPool", "Reshape", "Flatten"}


def inherited_grids(model: onnx.ModelProto, tensors: list[str]) -> dict[str, ActivationQuant]:
    """The grid each of ``tensors`` can share with a plan grid downstream (call after :func:`insert_qdq`).

    A tensor read only by a MaxPool, Reshape or Flatten (chains of them included) whose output a plan
    grid of 8 bits rounds takes that grid: rounding before a max or a reshape gives exactly what
    rounding after it gives, so the layer after still sees what the PyTorch model feeds it.
    """
    index = GraphIndex(model)
    planned = planned_tensors(model)
    out = {}
    for tensor in tensors:
        current = tensor
        while len(index.readers.get(current, [])) == 1 and index.readers[current][0].op_type in _SAME_GRID:
            current = index.readers[current][0].output[0]
            if current in planned:
                dq = index.producer[planned[current]]
                if dq.input[0] in index.producer and index.producer[dq.input[0]].input[0] == current:  # no Clip
                    scale, zero = index.array(dq.input[1]), index.array(dq.input[2])
                    out[tensor] = ActivationQuant(8, float(scale), int(zero))
                break
    return out


#: Operations that keep an int8 tensor int8 in ONNX Runtime (their QDQ pairs are dropped or fused).
_PASS_THROUGH = {"Relu", "Slice", "Pad", "Reshape", "Flatten", "MaxPool"}


def tensors_to_round(model: onnx.ModelProto, layers: list[QdqLayer]) -> list[str]:
    """Float tensors (besides the layers' inputs) that ONNX Runtime needs rounded to run the quantized
    layers, and the residual additions between them, as int8 kernels (call before :func:`insert_qdq`).

    * every quantized layer's output (taken after a Relu that alone reads it), unless only quantized
      layers read it;
    * both inputs and the output (after a sole Relu) of every Add whose inputs come from quantized
      layers or their inputs, through the operations of ``_PASS_THROUGH`` and other such Adds.
    """
    index = GraphIndex(model)
    nodes = {id(_layer_node(index, layer)): layer for layer in layers}
    int8 = {node.input[0] for node in model.graph.node if id(node) in nodes}
    out: dict[str, None] = {}

    def take(tensor: str) -> None:
        readers = index.readers.get(tensor, [])
        if len(readers) == 1 and readers[0].op_type == "Relu":
            tensor = readers[0].output[0]
            readers = index.readers.get(tensor, [])
        if tensor not in index.outputs and not all(id(r) in nodes for r in readers):
            out.setdefault(tensor)

    for node in model.graph.node:
        if id(node) in nodes:
            if nodes[id(node)].weight_codes is not None:
                int8.add(node.output[0])
                take(node.output[0])
        elif node.op_type in _PASS_THROUGH and node.input[0] in int8:
            int8.add(node.output[0])
        elif node.op_type == "Add" and len(node.input) == 2 and all(t in int8 for t in node.input):
            int8.add(node.output[0])
            for tensor in node.input:
                out.setdefault(tensor)
            take(node.output[0])
    return [t for t in out if t not in index.outputs]


def _insert_sorted(model: onnx.ModelProto, new: list[onnx.NodeProto]) -> None:
    """Adds ``new`` and orders every node after the nodes producing its inputs (ONNX needs a topological order)."""
    nodes = list(model.graph.node) + new
    produced_by = {o: i for i, n in enumerate(nodes) for o in n.output}
    order, state = [], [0] * len(nodes)

    def visit(i: int) -> None:
        stack = [(i, iter(nodes[i].input))]
        state[i] = 1
        while stack:
            j, inputs = stack[-1]
            for name in inputs:
                k = produced_by.get(name)
                if k is not None and state[k] == 0:
                    state[k] = 1
                    stack.append((k, iter(nodes[k].input)))
                    break
            else:
                stack.pop()
                state[j] = 2
                order.append(nodes[j])

    for i in range(len(nodes)):
        if state[i] == 0:
            visit(i)
    del model.graph.node[:]
    model.graph.node.extend(order)
