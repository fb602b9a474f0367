import gzip

import pytest
import torch

from moo_compress.compress import (
    ClusterConfig,
    CompressionPlan,
    LayerGroup,
    PruneConfig,
    QuantizeConfig,
    compress,
    compression_state,
    size_report,
)
from moo_compress.deploy.export import MAGIC, export_compressed, load_compressed, pack_compressed, unpack_compressed
from moo_compress.errors import CheckpointError, ConfigError
from moo_compress.models import create_model

from .conftest import TinyNet, make_tiny

PLANS = {
    "prune": CompressionPlan(prune=PruneConfig(0.6)),
    "prune-rare": CompressionPlan(prune=PruneConfig(0.97, scope="layer")),
    "quant-affine": CompressionPlan(prune=PruneConfig(0.3), quantize=QuantizeConfig(5, symmetric=False)),
    "quant-tensor": CompressionPlan(quantize=QuantizeConfig(3, per_channel=False, symmetric=False)),
    "quant16": CompressionPlan(quantize=QuantizeConfig(16)),
    "cluster": CompressionPlan(cluster=ClusterConfig(7)),
    "p-c-q": CompressionPlan(prune=PruneConfig(0.5), cluster=ClusterConfig(16), quantize=QuantizeConfig(8)),
    "collapsed": CompressionPlan(prune=PruneConfig(0.3), cluster=ClusterConfig(32), quantize=QuantizeConfig(2)),
    "collapsed-affine": CompressionPlan(cluster=ClusterConfig(64), quantize=QuantizeConfig(3, symmetric=False)),
    "no-preserve": CompressionPlan(prune=PruneConfig(0.5), cluster=ClusterConfig(4, preserve_sparsity=False)),
    "structured": CompressionPlan(
        prune=PruneConfig(0.5, structured=True), cluster=ClusterConfig(8), quantize=QuantizeConfig(4)
    ),
    "groups": CompressionPlan(
        groups=(
            LayerGroup("convs", ("conv*",), prune=PruneConfig(0.4), quantize=QuantizeConfig(6)),
            LayerGroup("head", ("fc*",), cluster=ClusterConfig(4, init="linear")),
        ),
        exclude_first_conv=True,
    ),
}


@pytest.mark.parametrize("name", list(PLANS))
def test_round_trip_is_bit_identical(tiny, inputs, tmp_path, name):
    small = compress(tiny, PLANS[name])
    result = export_compressed(small, tmp_path / "m.mcpk")
    loaded = load_compressed(tmp_path / "m.mcpk", TinyNet())
    for key, value in small.state_dict().items():
        assert torch.equal(value, loaded.state_dict()[key]), key
    with torch.no_grad():
        assert torch.equal(small.eval()(inputs), loaded(inputs))
    # the loaded model carries the same state: re-exporting gives the same bytes
    assert pack_compressed(loaded) == (tmp_path / "m.mcpk").read_bytes()
    assert compression_state(loaded).plan == PLANS[name]
    # measured size = analytic size + header + byte padding of each blob
    data = (tmp_path / "m.mcpk").read_bytes()
    header = int.from_bytes(data[8:12], "little") + 12
    blobs = sum(len(t["blobs"]) for t in __import__("json").loads(data[12:header])["tensors"])
    assert result.analytic_bytes <= result.bytes - header <= result.analytic_bytes + blobs
    assert result.bytes == len(data) and result.gzip_bytes == len(gzip.compress(data, 9, mtime=0))


def test_activation_quantization_survives_the_round_trip(tiny, calibration, inputs):
    small = compress(tiny, CompressionPlan(quantize=QuantizeConfig(8, activation_bits=6)), calibration)
    loaded = unpack_compressed(pack_compressed(small), make_tiny(seed=5))
    assert compression_state(loaded).activations == compression_state(small).activations
    with torch.no_grad():
        assert torch.equal(small(inputs), loaded(inputs))


def test_load_without_skeleton_uses_the_architecture_name(tmp_path):
    model = create_model("resnet20").eval()
    small = compress(
        model, CompressionPlan(prune=PruneConfig(0.5), cluster=ClusterConfig(8), quantize=QuantizeConfig(8))
    )
    export_compressed(small, tmp_path / "r.mcpk", arch="resnet20")
    loaded = load_compressed(tmp_path / "r.mcpk")
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(small(x), loaded(x))


def test_packed_file_is_smaller_than_the_analytic_bound_allows(tiny):
    small = compress(tiny, PLANS["p-c-q"])
    data = pack_compressed(small)
    assert len(data) < size_report(tiny).dense_bits / 8 / 3


def test_uncompressed_model_packs_raw(tiny, inputs):
    loaded = unpack_compressed(pack_compressed(tiny), TinyNet())
    with torch.no_grad():
        assert torch.equal(tiny(inputs), loaded(inputs))


def test_load_errors(tiny, tmp_path):
    small = compress(tiny, PLANS["prune"])
    with pytest.raises(CheckpointError, match="bad magic"):
        unpack_compressed(b"not a model at all", TinyNet())
    with pytest.raises(ConfigError, match="names no architecture"):
        unpack_compressed(pack_compressed(small))
    with pytest.raises(CheckpointError, match="does not fit"):
        unpack_compressed(pack_compressed(small), TinyNet(width=8))
    with pytest.raises(CheckpointError, match="does not exist"):
        load_compressed(tmp_path / "missing.mcpk", TinyNet())
    assert pack_compressed(small).startswith(MAGIC)


def test_export_does_not_touch_the_model(tiny, tmp_path):
    small = compress(tiny, PLANS["p-c-q"])
    before = {k: v.clone() for k, v in small.state_dict().items()}
    export_compressed(small, tmp_path / "a.mcpk")
    assert all(torch.equal(before[k], v) for k, v in small.state_dict().items())
    assert (tmp_path / "a.mcpk").read_bytes()[:8] == MAGIC
