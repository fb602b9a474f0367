import numpy as np
import pytest
import torch

from moo_compress.compress import (
    WEIGHT_BITS,
    ClusterConfig,
    CompressionPlan,
    PruneConfig,
    QuantizeConfig,
    compress,
    compression_state,
)
from moo_compress.compress.quantize import ActivationQuant, dequantize, fit_grid, quantize, quantize_weights
from moo_compress.errors import ConfigError

from .conftest import weight

LAYERS = ("conv1", "conv2", "fc1", "fc2")


def _levels_per_channel(w):
    return max(np.unique(row).size for row in w.reshape(w.shape[0], -1))


@pytest.mark.parametrize("bits", WEIGHT_BITS)
@pytest.mark.parametrize("symmetric", [True, False])
def test_per_channel_levels(tiny, bits, symmetric):
    small = compress(tiny, CompressionPlan(quantize=QuantizeConfig(bits, symmetric=symmetric)))
    for n in LAYERS:
        w = weight(small, n)
        assert _levels_per_channel(w) <= 2**bits
        original = weight(tiny, n).reshape(w.shape[0], -1)
        scale = compression_state(small).layers[n].quant.scale
        slack = 4 * np.finfo(np.float32).eps * np.abs(original)  # float32 rounding of (q - z) * scale
        assert np.all(np.abs(w.reshape(w.shape[0], -1) - original) <= scale[:, None] * 0.5 + slack)


@pytest.mark.parametrize("bits", [2, 3, 8])
def test_per_tensor_levels(tiny, bits):
    small = compress(tiny, CompressionPlan(quantize=QuantizeConfig(bits, per_channel=False)))
    for n in LAYERS:
        assert np.unique(weight(small, n)).size <= 2**bits - 1
        assert compression_state(small).layers[n].quant.scale.size == 1


def test_symmetric_grid_is_signed_and_hits_the_extremes():
    rows = np.array([[-1.0, 0.2, 0.5], [0.0, 0.0, 0.0], [3.0, -0.1, 0.0]], np.float32)
    params = fit_grid(rows, 4, symmetric=True)
    codes = quantize(rows, params)
    assert codes.dtype == np.int8 and codes.min() >= -7 and codes.max() <= 7
    assert codes[0, 0] == -7 and codes[2, 0] == 7  # the largest |w| sits on the top code
    np.testing.assert_array_equal(dequantize(codes, params)[1], 0)  # an all-zero row stays zero
    assert params.scale[1] == 1.0


def test_affine_grid_keeps_zero_exact():
    rng = np.random.default_rng(0)
    w = rng.uniform(0.1, 1.0, size=(4, 50)).astype(np.float32)  # all positive rows
    w[:, ::3] = 0
    params, codes = quantize_weights(w, 3, symmetric=False, per_channel=True)
    assert codes.dtype == np.uint8 and codes.max() <= 7
    back = dequantize(codes.reshape(4, -1), params)
    np.testing.assert_array_equal(back[:, ::3], 0)


def test_quantization_preserves_pruned_zeros(tiny):
    for symmetric in (True, False):
        plan = CompressionPlan(prune=PruneConfig(0.5), quantize=QuantizeConfig(4, symmetric=symmetric))
        small = compress(tiny, plan)
        pruned = compress(tiny, CompressionPlan(prune=PruneConfig(0.5)))
        for n in LAYERS:
            assert np.all(weight(small, n)[weight(pruned, n) == 0] == 0)


@pytest.mark.parametrize("bits", [2, 4, 8])
def test_clustered_layers_quantize_their_centroids(tiny, bits):
    plan = CompressionPlan(cluster=ClusterConfig(16), quantize=QuantizeConfig(bits))
    small = compress(tiny, plan)
    for n, layer in compression_state(small).layers.items():
        w = weight(small, n)
        values = np.unique(w)
        assert values.size <= min(16, 2**bits)
        step = layer.quant.scale[0]
        np.testing.assert_allclose(values / step, np.rint(values / step), atol=1e-3)  # on the codebook's grid
        np.testing.assert_array_equal(layer.codebook, dequantize(layer.codebook_codes[None], layer.quant)[0])


def test_activation_quantization_needs_calibration(tiny):
    with pytest.raises(ConfigError, match="needs calibration images"):
        compress(tiny, CompressionPlan(quantize=QuantizeConfig(8, activation_bits=8)))


def test_activation_quantization_fake_quantizes_layer_inputs(tiny, calibration, inputs):
    plan = CompressionPlan(quantize=QuantizeConfig(8, activation_bits=4))
    weights_only = compress(tiny, CompressionPlan(quantize=QuantizeConfig(8)))
    small = compress(tiny, plan, calibration)
    state = compression_state(small)
    assert set(state.activations) == set(LAYERS)
    seen = {}
    handle = small.fc1.register_forward_pre_hook(lambda m, a: seen.setdefault("x", a[0]))  # runs after ours
    with torch.no_grad():
        out = small(inputs)
    handle.remove()
    aq = state.activations["fc1"]
    assert torch.unique(seen["x"]).numel() <= 16
    grid = seen["x"] / aq.scale + aq.zero_point
    assert torch.allclose(grid, grid.round(), atol=1e-3)
    with torch.no_grad():
        assert not torch.allclose(out, weights_only(inputs))


def test_activation_grid_from_range():
    aq = ActivationQuant.from_range(-1.0, 3.0, 8)
    assert aq.zero_point == 64 and abs(aq.scale - 4 / 255) < 1e-7
    x = torch.linspace(-2, 5, 100)
    y = aq(None, (x,))[0]
    # the zero point is rounded to an integer, so the grid may extend one step past the range
    assert y.min() >= -1.0 - aq.scale and y.max() <= 3.0 + aq.scale and torch.unique(y).numel() <= 256
    assert aq(None, (torch.zeros(3),))[0].eq(0).all()  # zero is exact
