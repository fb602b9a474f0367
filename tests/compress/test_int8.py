import pytest
import torch

from moo_compress.compress import (
    ClusterConfig,
    CompressionPlan,
    PruneConfig,
    QuantizeConfig,
    compare_latency,
    compress,
    measure_latency,
    to_int8,
)
from moo_compress.errors import ConfigError

pytestmark = pytest.mark.skipif(
    "x86" not in torch.backends.quantized.supported_engines
    and "fbgemm" not in torch.backends.quantized.supported_engines,
    reason="no x86 quantized engine",
)


def _engine():
    return "x86" if "x86" in torch.backends.quantized.supported_engines else "fbgemm"


def test_int8_model_follows_the_fake_quantized_one(tiny, calibration):
    small = compress(tiny, CompressionPlan(prune=PruneConfig(0.5), quantize=QuantizeConfig(8)))
    int8 = to_int8(small, calibration, backend=_engine())
    x = calibration.tensor(slice(0, 32))
    with torch.no_grad():
        reference, out = small(x), int8(x)
    assert out.shape == reference.shape
    assert (out.argmax(1) == reference.argmax(1)).float().mean() >= 0.8
    assert torch.nn.functional.cosine_similarity(out.flatten(), reference.flatten(), dim=0) > 0.98
    kinds = {type(m).__module__ for m in int8.modules()}
    assert any("quantized" in k for k in kinds)
    assert measure_latency(int8, x, warmup=1, repeats=2) > 0
    timings = compare_latency({"fake": small, "int8": int8}, x, rounds=2, warmup=1)
    assert list(timings) == ["fake", "int8"] and timings["fake"][1] == 1.0 and timings["int8"][0] > 0


def test_int8_needs_8_bit_layers(tiny, calibration):
    for plan in (
        CompressionPlan(prune=PruneConfig(0.5)),
        CompressionPlan(cluster=ClusterConfig(4), quantize=QuantizeConfig(4)),
    ):
        with pytest.raises(ConfigError, match="quantized to 8 bits"):
            to_int8(compress(tiny, plan), calibration)
    with pytest.raises(ConfigError, match="carries no compression state"):
        to_int8(tiny, calibration)
