"""Calibration on the real ResNet-20 checkpoint and CIFAR-10 (``-m shared_data``): the issue's done-means.

Batch-norm re-estimation from class-balanced pools of different sizes (different images, not nested)
must agree to within 1 point of full-test accuracy, and reordering the same images must change at most
0.1% of the predictions.
"""

import numpy as np
import pytest

from moo_compress.compress import (
    CalibrationData,
    ClusterConfig,
    CompressionPlan,
    PruneConfig,
    QuantizeConfig,
    compress,
)
from moo_compress.data import load_dataset
from moo_compress.evaluation import Evaluator
from moo_compress.models import load_pretrained

PLANS = {
    "uncompressed": CompressionPlan(),
    "P70-C4-Q4": CompressionPlan(prune=PruneConfig(0.7), cluster=ClusterConfig(4), quantize=QuantizeConfig(4)),
}


@pytest.mark.shared_data
@pytest.mark.slow
@pytest.mark.parametrize("name", list(PLANS))
def test_resnet20_recalibration_is_stable_across_pools_and_orders(cifar10_root, shared_weights_dir, name):
    pre = load_pretrained("resnet20", "cifar10", weights_dir=shared_weights_dir)
    train = load_dataset("cifar10", "train", data_root=cifar10_root)
    test = load_dataset("cifar10", "test", data_root=cifar10_root)

    def predictions(calibration: CalibrationData) -> np.ndarray:
        plan = CompressionPlan.from_dict({**PLANS[name].to_dict(), "recovery": {"bn_images": len(calibration)}})
        model = compress(pre.model, plan, calibration)
        return Evaluator(model, mean=pre.mean, std=pre.std).predict(test.images)

    pools = {n: CalibrationData.from_dataset(train, mean=pre.mean, std=pre.std, n=n, seed=seed)
             for n, seed in ((520, 1), (1000, 2), (5000, 3))}
    # different images: the pools were drawn with different seeds
    small_hashes = {x.tobytes() for x in pools[520].images}
    assert sum(x.tobytes() in small_hashes for x in pools[1000].images) < 100
    for pool in pools.values():  # every class seen equally
        counts = np.bincount(pool.labels, minlength=10)
        assert counts.max() - counts.min() <= 1

    accuracy = {n: float(np.mean(predictions(pool) == test.labels)) for n, pool in pools.items()}
    assert max(accuracy.values()) - min(accuracy.values()) <= 0.01, accuracy

    pool = pools[1000]
    order = np.random.default_rng(0).permutation(len(pool))
    shuffled = CalibrationData(pool.images[order], pool.mean, pool.std, pool.labels[order])
    changed = np.mean(predictions(pool) != predictions(shuffled))
    assert changed <= 0.001, f"{changed:.4%} of the predictions changed"
