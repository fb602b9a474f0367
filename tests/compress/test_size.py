import math

import numpy as np
import pytest
import torch
from torch import nn

from moo_compress.compress import (
    ClusterConfig,
    CompressionPlan,
    PruneConfig,
    QuantizeConfig,
    compress,
    compression_ratio,
    compression_state,
    model_fingerprint,
    size_report,
)
from moo_compress.compress.encoding import (
    ceil_log2,
    choose_encoding,
    pack_uint,
    relative_codes,
    relative_positions,
    unpack_uint,
)


def _linear(rows=32, cols=64, seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(cols, rows))


def test_uncompressed_model_has_ratio_one(tiny):
    report = size_report(tiny)
    floats = sum(v.numel() for v in tiny.state_dict().values() if v.is_floating_point())
    assert report.dense_bits == report.compressed_bits == 32 * floats
    assert compression_ratio(tiny) == 1.0
    assert all(t.kind == "raw" for t in report.tensors)
    assert not any("num_batches_tracked" in t.name for t in report.tensors)


def _linear_with(weight: torch.Tensor) -> nn.Sequential:
    """A one-layer model whose weight is ``weight`` (rows = output features) and whose bias is zero."""
    rows, cols = weight.shape
    model = nn.Sequential(nn.Linear(cols, rows))
    with torch.no_grad():
        model[0].weight.copy_(weight)
        model[0].bias.zero_()
    return model


def test_quantized_layer_bits_by_hand():
    # 32 x 64 weights of magnitude 0.5 to 1 (a varied sign): at 4 bits every |w| / scale is at least
    # 3.5, so no code rounds to zero and every position is stored, in the dense layout.
    rng = np.random.default_rng(0)
    magnitude = rng.uniform(0.5, 1.0, size=(32, 64))
    sign = np.where(rng.random((32, 64)) < 0.5, -1.0, 1.0)
    small = compress(_linear_with(torch.tensor(magnitude * sign, dtype=torch.float32)),
                     CompressionPlan(quantize=QuantizeConfig(4)))
    assert bool((small[0].weight != 0).all())
    report = size_report(small)
    w = next(t for t in report.tensors if t.name == "0.weight")
    codes = 32 * 64 * 4  # one 4-bit code per weight
    scales = 32 * 32  # one fp32 scale per output channel (symmetric: no zero point)
    assert (w.kind, w.layout, w.numel, w.nonzero) == ("quant", "dense", 2048, 2048)
    assert w.bits == codes + scales == 9216
    assert w.dense_bits == 32 * 2048
    bias = next(t for t in report.tensors if t.name == "0.bias")
    assert bias.bits == bias.dense_bits == 32 * 32 and bias.kind == "raw"
    assert report.dense_bits == 32 * (32 * 64 + 32) == 66560
    assert report.compressed_bits == 9216 + 1024 == 10240
    assert report.compression_ratio == pytest.approx(66560 / 10240)  # 6.5
    assert compression_ratio(small) == pytest.approx(6.5)


def test_clustered_pruned_layer_bits_by_hand():
    # 64 x 256 weights: even flat positions hold 16 evenly spaced values in [-1, 1], odd positions a
    # tiny 0.001, so 50% magnitude pruning removes exactly the odd positions, clustering into 16 finds
    # the 16 values, and they sit on the 8-bit affine grid of [-1, 1] (step 2/255; they are 17 steps
    # apart), so quantizing the codebook keeps all 16.
    rows, cols = 64, 256
    n = rows * cols
    levels = np.linspace(-1.0, 1.0, 16)
    flat = np.full(n, 0.001)
    flat[0::2] = levels[np.arange(n // 2) % 16]
    plan = CompressionPlan(
        prune=PruneConfig(0.5), cluster=ClusterConfig(16), quantize=QuantizeConfig(8, symmetric=False)
    )
    small = compress(_linear_with(torch.tensor(flat.reshape(rows, cols), dtype=torch.float32)), plan)
    weight = small[0].weight.detach().numpy().reshape(-1)
    np.testing.assert_array_equal(weight[1::2], 0)
    assert np.count_nonzero(weight[0::2]) == n // 2 and np.unique(weight[0::2]).size == 16
    t = next(t for t in size_report(small).tensors if t.name == "0.weight")
    assert (t.kind, t.numel, t.nonzero) == ("codebook", n, n // 2)
    nnz, k = n // 2, 16
    index_bits = 4  # ceil(log2 16)
    # The layouts, costed by hand (positions alternate stored, zero, stored, ..., ending on a zero):
    dense = n * 5  # ceil(log2(16 + 1)) = 5 bits per position: 16 centroids and the zero code
    bitmask = n + nnz * index_bits  # 16384 + 32768 = 49152
    # relative with r = 1: before each stored code, one 1-bit escape per skipped zero (the escape of a
    # 1-bit count is its only non-zero value) and one final count; the first code skips nothing, each
    # later one skips one zero, and the trailing zero is never written: 8191 escapes
    relative_1 = 1 * (nnz + (nnz - 1)) + nnz * index_bits  # 49151
    relative_2 = 2 * nnz + nnz * index_bits  # r = 2: no gap reaches 3, so no escape; 49152
    assert relative_1 == 49151 < min(dense, bitmask, relative_2)  # every row keeps weights: no rows layout
    side = k * 8 + 32 + 32  # the codebook at 8 bits, one fp32 scale and one fp32 zero point
    assert t.layout == "relative"
    assert t.bits == relative_1 + side == 49343
    report = size_report(small)
    assert report.dense_bits == 32 * (n + rows)
    assert report.compressed_bits == 49343 + 32 * rows  # the bias stays fp32


@pytest.mark.parametrize("symmetric", [True, False])
def test_quantized_codebook_merges_and_charges_new_zeros_as_pruned(symmetric):
    """C32-Q2: 32 centroids on a 2-bit grid keep at most 3 (symmetric: 2) distinct non-zero values."""
    model = _linear(rows=64, cols=256)
    small = compress(model, CompressionPlan(prune=PruneConfig(0.3), cluster=ClusterConfig(32),
                                            quantize=QuantizeConfig(2, symmetric=symmetric)))
    layer = compression_state(small).layers["0"]
    w = small[0].weight.detach().numpy()
    values = np.unique(w[w != 0])
    # the codebook is exactly the distinct non-zero values left, and the mask exactly the zeros
    np.testing.assert_array_equal(np.sort(layer.codebook), values)
    assert values.size <= (2 if symmetric else 3)
    np.testing.assert_array_equal(layer.mask, w != 0)
    assert np.all((layer.indices >= 0) == (w != 0))
    if symmetric:  # the middle level is 0: quantization created zeros beyond the pruned ones
        assert int((w == 0).sum()) > 0.3 * w.size + 100
    t = next(t for t in size_report(small).tensors if t.name == "0.weight")
    n, nnz, k = w.size, int((w != 0).sum()), values.size
    assert t.nonzero == nnz
    side = k * 2 + 32 * (1 if symmetric else 2)
    # the index width follows the merged codebook; zeros cost what pruned weights cost
    assert t.bits - side <= min(n * ceil_log2(k + 1), n + nnz * ceil_log2(k))


def test_collapsed_codebook_is_sized_like_the_plan_it_equals():
    """More centroids than grid levels no longer cost wider indices: C32-Q2 ~ C4-Q2 (was 8.4x vs 13.7x)."""
    model = _linear(rows=64, cols=256)
    many = size_report(compress(model, CompressionPlan(prune=PruneConfig(0.5), cluster=ClusterConfig(32),
                                                        quantize=QuantizeConfig(2))))
    few = size_report(compress(model, CompressionPlan(prune=PruneConfig(0.5), cluster=ClusterConfig(4),
                                                       quantize=QuantizeConfig(2))))
    assert many.compression_ratio == pytest.approx(few.compression_ratio, rel=0.05)


def test_identical_weights_get_identical_sizes():
    model = _linear(rows=64, cols=256)
    a = compress(model, CompressionPlan(prune=PruneConfig(0.5), cluster=ClusterConfig(16), quantize=QuantizeConfig(3)))
    b = compress(model, CompressionPlan(prune=PruneConfig(0.5, scope="layer"), cluster=ClusterConfig(16),
                                        quantize=QuantizeConfig(3)))  # one layer: the same mask
    assert model_fingerprint(a) == model_fingerprint(b)
    assert size_report(a).compressed_bits == size_report(b).compressed_bits


def test_structured_pruning_uses_the_per_filter_layout():
    model = _linear(rows=64, cols=128)
    small = compress(
        model, CompressionPlan(prune=PruneConfig(0.5, structured=True, scope="layer"), quantize=QuantizeConfig(8))
    )
    t = next(t for t in size_report(small).tensors if t.name == "0.weight")
    assert t.layout == "rows"
    assert t.bits == 64 + 32 * 128 * 8 + 64 * 32


def test_choose_encoding_takes_the_smallest():
    shape = (10, 100)
    assert choose_encoding(None, shape, dense_bits=4, code_bits=4).layout == "dense"
    dense_mostly = np.ones(1000, bool)
    dense_mostly[::50] = False
    assert choose_encoding(dense_mostly, shape, dense_bits=4, code_bits=4).layout == "dense"
    half = np.zeros(1000, bool)
    half[1::2] = True
    assert choose_encoding(half, shape, dense_bits=32, code_bits=32).layout == "bitmask"
    half[-1] = False  # 1-bit relative codes are a bitmask that stops at the last stored code: cheaper
    assert choose_encoding(half, shape, dense_bits=32, code_bits=32).bits == 998 + 499 * 32  # last code at 997
    rare = np.zeros(1000, bool)
    rare[::97] = True
    enc = choose_encoding(rare, shape, dense_bits=8, code_bits=8)
    assert enc.layout == "relative" and enc.relative_bits >= 5
    nnz = int(rare.sum())
    assert enc.bits < 1000 + nnz * 8
    rows = np.zeros((10, 100), bool)
    rows[:3] = True
    assert choose_encoding(rows.ravel(), shape, dense_bits=8, code_bits=8).layout == "rows"


@pytest.mark.parametrize("r", [1, 2, 3, 5, 8])
def test_relative_codes_round_trip(r):
    rng = np.random.default_rng(r)
    present = rng.random(5000) < 0.1
    present[0] = True
    codes = relative_codes(present, r)
    assert codes.max() <= 2**r - 1
    np.testing.assert_array_equal(relative_positions(codes, r), np.flatnonzero(present))
    enc = choose_encoding(present, (1, 5000), dense_bits=32, code_bits=0)
    if enc.layout == "relative":
        assert enc.bits == enc.relative_bits * relative_codes(present, enc.relative_bits).size


@pytest.mark.parametrize("bits", [0, 1, 2, 3, 4, 5, 7, 8, 9, 12, 16, 32])
def test_pack_uint_round_trip(bits):
    rng = np.random.default_rng(bits)
    count = 3001
    values = rng.integers(0, 2**bits, size=count, dtype=np.uint64) if bits else np.zeros(count, np.uint64)
    data = pack_uint(values, bits)
    assert len(data) == math.ceil(count * bits / 8)
    np.testing.assert_array_equal(unpack_uint(data, bits, count), values.astype(np.uint32))


def test_report_table_and_records(tiny):
    small = compress(tiny, CompressionPlan(prune=PruneConfig(0.5), quantize=QuantizeConfig(8)))
    report = size_report(small)
    text = report.to_markdown()
    assert "conv1.weight" in text and "**total**" in text and "bn1" not in text
    assert len(report.layers()) == 4
    assert report.to_records()[0]["ratio"] > 0
    assert 3.5 < report.compression_ratio < 8
