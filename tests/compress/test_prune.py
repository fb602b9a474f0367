import numpy as np
import pytest
import torch
from torch import nn

from moo_compress.compress import CompressionPlan, PruneConfig, compress, compression_state
from moo_compress.compress.prune import filter_mask, magnitude_mask, prune_masks

from .conftest import make_tiny, weight

LAYERS = ("conv1", "conv2", "fc1", "fc2")


def _sparsity(model, names=LAYERS):
    total = sum(weight(model, n).size for n in names)
    return sum(np.count_nonzero(weight(model, n) == 0) for n in names) / total


@pytest.mark.parametrize("sparsity", [0.0, 0.1, 0.5, 0.77, 0.95])
def test_global_sparsity_is_exact_and_keeps_the_largest(tiny, sparsity):
    small = compress(tiny, CompressionPlan(prune=PruneConfig(sparsity)))
    total = sum(weight(tiny, n).size for n in LAYERS)
    assert abs(_sparsity(small) - sparsity) <= 0.5 / total + 1e-12  # exact to one weight
    kept = np.concatenate([np.abs(weight(tiny, n))[weight(small, n) != 0] for n in LAYERS])
    pruned = np.concatenate([np.abs(weight(tiny, n))[weight(small, n) == 0] for n in LAYERS])
    if pruned.size and kept.size:
        assert pruned.max() <= kept.min()
    for n in LAYERS:  # surviving weights are untouched
        mask = weight(small, n) != 0
        np.testing.assert_array_equal(weight(small, n)[mask], weight(tiny, n)[mask])


def test_layer_scope_prunes_every_layer_to_the_target(tiny):
    small = compress(tiny, CompressionPlan(prune=PruneConfig(0.6, scope="layer")))
    for n in LAYERS:
        w = weight(small, n)
        assert abs(np.mean(w == 0) - 0.6) <= 0.5 / w.size + 1e-12


def test_ties_are_broken_exactly():
    magnitudes = np.zeros(1000, dtype=np.float32)
    magnitudes[:300] = 1.0  # 700 tied zeros
    keep = magnitude_mask(magnitudes, 500)
    assert np.count_nonzero(~keep) == 500
    assert keep[:300].all()


def test_structured_layer_scope_removes_whole_filters(tiny):
    small = compress(tiny, CompressionPlan(prune=PruneConfig(0.5, scope="layer", structured=True)))
    for n in LAYERS:
        w = weight(small, n)
        rows = w.reshape(w.shape[0], -1)
        dead = np.all(rows == 0, axis=1)
        assert np.all((rows != 0).all(axis=1) | dead)  # a filter is either whole or gone
        assert dead.sum() == min(round(0.5 * w.shape[0]), w.shape[0] - 1)
        l1 = np.abs(weight(tiny, n).reshape(w.shape[0], -1)).sum(1)
        assert l1[dead].max() <= l1[~dead].min()


def test_structured_global_hits_the_target_and_keeps_a_filter_per_layer():
    rng = np.random.default_rng(0)
    weights = [
        rng.normal(scale=s, size=(c, 3 * 3 * 32)).astype(np.float32) for c, s in ((64, 0.1), (128, 1.0), (256, 0.5))
    ]
    for sparsity in (0.3, 0.5, 0.9, 0.99):
        masks = prune_masks(weights, PruneConfig(sparsity, structured=True))
        achieved = sum(np.count_nonzero(~m) for m in masks) / sum(w.size for w in weights)
        assert abs(achieved - sparsity) <= 0.005
        assert all(m.reshape(m.shape[0], -1).all(axis=1).any() for m in masks)
    keeps = filter_mask([w.reshape(w.shape[0], -1) for w in weights], 0.2, scope="global")
    assert keeps[0].sum() < keeps[1].sum()  # the low-magnitude layer loses more filters


def test_global_sparsity_within_half_a_point_on_a_wide_model():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 64, 3), nn.Conv2d(64, 128, 3), nn.Flatten(), nn.Linear(128, 10))
    for sparsity in (0.25, 0.5, 0.8):
        for structured in (False, True):
            small = compress(model, CompressionPlan(prune=PruneConfig(sparsity, structured=structured)))
            state = compression_state(small)
            zeros = sum(s.numel - s.nonzero for s in state.layers.values())
            total = sum(s.numel for s in state.layers.values())
            assert abs(zeros / total - sparsity) <= 0.005


def test_exclusions_leave_first_conv_and_classifier_alone(tiny):
    small = compress(tiny, CompressionPlan(prune=PruneConfig(0.9), exclude_first_conv=True, exclude_classifier=True))
    np.testing.assert_array_equal(weight(small, "conv1"), weight(tiny, "conv1"))
    np.testing.assert_array_equal(weight(small, "fc2"), weight(tiny, "fc2"))
    assert set(compression_state(small).layers) == {"conv2", "fc1"}
    assert abs(_sparsity(small, ("conv2", "fc1")) - 0.9) < 1e-3


def test_pruning_already_sparse_weights_counts_existing_zeros():
    model = make_tiny()
    with torch.no_grad():
        model.fc1.weight[:, ::2] = 0  # half of fc1 is already zero
    small = compress(model, CompressionPlan(prune=PruneConfig(0.5, scope="layer")))
    assert abs(np.mean(weight(small, "fc1") == 0) - 0.5) < 1e-3


def test_global_ties_across_layers_are_broken_exactly():
    a = np.zeros(600, np.float32)
    a[:100] = 1.0  # 500 tied zeros
    b = np.zeros(400, np.float32)
    b[:300] = 2.0  # 100 tied zeros
    masks = prune_masks([a, b], PruneConfig(0.55))  # 550 of 1000: all but 50 of the 600 tied zeros
    assert sum(np.count_nonzero(~m) for m in masks) == 550
    assert masks[0][:100].all() and masks[1][:300].all()
    assert masks[1][300:].sum() == 50  # the last ties (in layer order) are the ones kept
