"""The issue's done-means on the real VGG-19 checkpoint and CIFAR-10 test images (``-m shared_data``)."""

import os

import pytest
import torch

from moo_compress.compress import (
    ClusterConfig,
    CompressionPlan,
    PruneConfig,
    QuantizeConfig,
    compress,
    pack_compressed,
    size_report,
    state_dict_bytes,
    unpack_compressed,
)
from moo_compress.data import load_dataset, stratified_indices
from moo_compress.evaluation import Evaluator
from moo_compress.models import load_pretrained

PLAN = CompressionPlan(prune=PruneConfig(0.5), cluster=ClusterConfig(16), quantize=QuantizeConfig(8))


@pytest.mark.shared_data
@pytest.mark.slow
def test_vgg19_p50_c16_q8_keeps_accuracy_and_is_6x_smaller(cifar10_root, shared_weights_dir):
    pre = load_pretrained("vgg19", "cifar10", weights_dir=shared_weights_dir)
    small = compress(pre.model, PLAN)

    # size: the packed file against the fp32 state_dict, both measured in bytes
    packed = pack_compressed(small, arch="vgg19")
    fp32 = len(state_dict_bytes(pre.model))
    assert fp32 / len(packed) >= 6
    assert os.path.getsize(pre.weights_path) / len(packed) >= 6
    assert size_report(small).compression_ratio >= 6

    # accuracy on a fixed stratified 2,000-image subset of the test split (bf16, as the search evaluates)
    test = load_dataset("cifar10", "test", data_root=cifar10_root)
    subset = test.subset(stratified_indices(test.labels, 200, seed=0))

    def accuracy(model: torch.nn.Module) -> float:
        evaluator = Evaluator(model, mean=pre.mean, std=pre.std, precision="bf16", batch_size=250)
        return evaluator.accuracy(subset.images, subset.labels)

    baseline, compressed = accuracy(pre.model), accuracy(small)
    assert baseline > 0.8
    assert baseline - compressed <= 0.02, f"{baseline:.4f} -> {compressed:.4f}"

    # the packed file loads back into the same model (the evaluator ran on its own copy of ``small``)
    loaded = unpack_compressed(packed)
    floats = {k: v for k, v in small.state_dict().items() if v.is_floating_point()}  # not num_batches_tracked
    assert all(torch.equal(v, loaded.state_dict()[k]) for k, v in floats.items())
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(small.eval()(x), loaded(x))
