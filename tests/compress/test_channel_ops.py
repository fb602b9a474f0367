"""The one table of operations a removed channel may pass (``compress.channel_ops``): its shape, and that the
torch.fx analysis (``channel_graph``) and the ONNX export (``deploy.graph``) both follow it, row by row."""

import pytest
import torch
from torch import nn

from moo_compress.compress import CompressionPlan, PruneConfig, channel_graph, compress
from moo_compress.compress.channel_ops import (
    CHANNEL_OPS,
    OpKind,
    fx_functions,
    fx_methods,
    fx_modules,
    onnx_ops,
)

# kinds whose operations stay in an exported graph, and those that leave no node of their own
KEPT_IN_ONNX = {OpKind.ACTIVATION, OpKind.POOLING, OpKind.FLATTEN, OpKind.LAYER}
GONE_IN_ONNX = {OpKind.VANISHES, OpKind.SHAPE_ONLY, OpKind.BATCH_NORM}


def test_every_kind_is_listed_once_and_every_row_has_its_spellings():
    assert KEPT_IN_ONNX | GONE_IN_ONNX == set(OpKind)
    for op in CHANNEL_OPS:
        assert op.modules or op.functions or op.methods, op.name
        assert bool(op.onnx) == (op.kind in KEPT_IN_ONNX), op.name
    names = [op.name for op in CHANNEL_OPS]
    assert len(names) == len(set(names))


def test_no_spelling_belongs_to_two_kinds():
    for a in OpKind:
        for b in OpKind:
            if a is b:
                continue
            assert not set(fx_modules(a)) & set(fx_modules(b)), (a, b)
            assert not fx_functions(a) & fx_functions(b), (a, b)
            assert not fx_methods(a) & fx_methods(b), (a, b)
            assert not onnx_ops(a) & onnx_ops(b), (a, b)


def test_the_table_reads_as_the_rule_was_written():
    # written out by hand from the rule as it stood in channels.py and onnx_graph.py before it had one home
    assert onnx_ops(OpKind.ACTIVATION) == {"Relu", "Clip", "LeakyRelu"}
    assert onnx_ops(OpKind.POOLING) == {"MaxPool", "GlobalAveragePool", "GlobalMaxPool", "AveragePool", "ReduceMean",
                                        "ReduceMax"}
    assert onnx_ops(OpKind.FLATTEN) == {"Flatten", "Reshape"}
    assert onnx_ops(OpKind.LAYER) == {"Conv", "Gemm"}
    assert set(fx_modules(OpKind.ACTIVATION)) == {nn.ReLU, nn.ReLU6, nn.Hardtanh, nn.LeakyReLU}
    assert set(fx_modules(OpKind.POOLING)) == {nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d}
    assert fx_methods(OpKind.VANISHES) == {"contiguous"} and fx_methods(OpKind.SHAPE_ONLY) == {"size", "dim"}


class Chain(nn.Module):
    """conv1 -> bn -> ``op`` -> conv2 (padded) -> relu -> flatten -> fc: conv1's filters can go iff ``op`` lets them."""

    def __init__(self, op: nn.Module) -> None:
        super().__init__()
        self.conv1, self.bn, self.op = nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), op
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
        self.fc = nn.LazyLinear(4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv2(self.op(self.bn(self.conv1(x))))
        return self.fc(torch.flatten(torch.relu(x), 1))


# (row of the table or None for an operation outside it, an example module)
EXAMPLES = {
    "dropout": ("identity and dropout", nn.Dropout2d(0.5)),
    "relu": ("ReLU", nn.ReLU()),
    "relu6": ("ReLU6 and Hardtanh", nn.ReLU6()),
    "hardtanh": ("ReLU6 and Hardtanh", nn.Hardtanh(-0.5, 2.0)),
    "leaky": ("LeakyReLU", nn.LeakyReLU(0.1)),
    "maxpool": ("max pooling", nn.MaxPool2d(2)),
    "avgpool": ("average pooling", nn.AvgPool2d(2)),
    "gelu": (None, nn.GELU()),  # GELU(0) = 0, but it is not in the table: both walkers must stop there
}


def _model(op: nn.Module) -> nn.Module:
    model = Chain(op)
    model(torch.zeros(1, 3, 8, 8))  # size the LazyLinear
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        model.bn.weight.copy_(torch.rand(8, generator=g) + 0.5)
        model.bn.bias.copy_(torch.rand(8, generator=g) + 0.2)
    return model.eval()


@pytest.mark.parametrize("example", list(EXAMPLES))
@pytest.mark.slow
def test_the_fx_analysis_and_the_onnx_export_agree_on_every_row(example, tmp_path):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    import onnx

    from moo_compress.deploy import export_onnx

    row_name, op = EXAMPLES[example]
    row = next((r for r in CHANNEL_OPS if r.name == row_name), None)
    assert (row is None) or isinstance(op, row.modules)
    passes = row is not None
    model = _model(op)
    assert channel_graph(model).removable == ({"conv1", "conv2"} if passes else {"conv2"})

    # plain structured pruning (not removable_only): the export decides on its own which filters go
    small = compress(model, CompressionPlan(prune=PruneConfig(0.5, scope="layer", structured=True)))
    zero = {n: int((~m.weight.detach().reshape(m.weight.shape[0], -1).any(1)).sum())
            for n, m in small.named_modules() if n in ("conv1", "conv2")}
    assert zero == {"conv1": 4, "conv2": 4}
    result = export_onnx(small, None, tmp_path / f"{example}.onnx", mean=(0.5,) * 3, std=(0.25,) * 3,
                         input_size=(3, 8, 8))
    assert result.removed_filters == (8 if passes else 4)
    ops = {node.op_type for node in onnx.load(result.path).graph.node}
    if row is not None and row.onnx:  # the module exports to the row's ONNX spelling
        assert ops & set(row.onnx), (row.name, sorted(ops))
    if row is None:  # GELU exports to operators that no row of the table holds
        gelu = ops & {"Gelu", "Erf"}
        assert gelu and not gelu & onnx_ops(*OpKind)
