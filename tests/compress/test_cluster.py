import numpy as np
import pytest

from moo_compress.compress import ClusterConfig, CompressionPlan, PruneConfig, compress, compression_state, kmeans_1d
from moo_compress.compress.cluster import assign, cluster_weights

from .conftest import weight

LAYERS = ("conv1", "conv2", "fc1", "fc2")


def _naive_lloyd(values, centroids, iterations):
    """The textbook n x k version, for reference."""
    c = centroids.astype(np.float64)
    for _ in range(iterations):
        labels = np.argmin(np.abs(values[:, None] - c[None, :]), axis=1)
        c = np.array([values[labels == j].mean() if np.any(labels == j) else c[j] for j in range(c.size)])
    return c


@pytest.mark.parametrize("init", ["kmeans++", "linear"])
def test_kmeans_reaches_a_lloyd_fixed_point(init):
    rng = np.random.default_rng(0)
    values = np.concatenate([rng.normal(0, 1, 3000), rng.normal(5, 0.5, 1000)]).astype(np.float32)
    result = kmeans_1d(values, 8, init=init, rng=np.random.default_rng(1), tol=0, max_iter=10_000)
    assert result.converged
    c = result.centroids
    assert np.all(np.diff(c) > 0) and c.size <= 8
    for j in range(c.size):  # every centroid is the exact mean of its members
        np.testing.assert_allclose(values[result.labels == j].mean(dtype=np.float64), c[j], rtol=1e-5)
    nearest = np.argmin(np.abs(values[:, None] - c[None, :]), axis=1)
    assert np.mean(nearest == result.labels) > 0.999  # only float32 midpoint rounding may differ
    # one more textbook iteration does not move the centroids
    np.testing.assert_allclose(_naive_lloyd(values, c, 1), c, rtol=1e-4, atol=1e-6)


def test_kmeans_matches_textbook_lloyd_from_the_same_start():
    rng = np.random.default_rng(2)
    values = rng.laplace(0, 0.05, 5000).astype(np.float32)
    start = np.linspace(values.min(), values.max(), 6)
    fast = kmeans_1d(values, 6, init="linear", tol=0, max_iter=25)
    # 25 updates, then the returned means of the final partition: a 26th textbook iteration
    np.testing.assert_allclose(fast.centroids, _naive_lloyd(values, start, 26), rtol=1e-5, atol=1e-8)


def test_kmeans_edge_cases():
    assert kmeans_1d(np.zeros(0, np.float32), 4).centroids.size == 0
    few = kmeans_1d(np.array([1, 1, 2, 2, 2, 7], np.float32), 16)
    np.testing.assert_array_equal(few.centroids, [1, 2, 7])
    np.testing.assert_array_equal(few.labels, [0, 0, 1, 1, 1, 2])
    const = kmeans_1d(np.full(100, 0.5, np.float32), 4)
    assert const.centroids.tolist() == [0.5]


def test_assign_agrees_for_small_and_large_k():
    rng = np.random.default_rng(0)
    values = rng.normal(size=10_000).astype(np.float32)
    for k in (4, 64, 300):
        boundaries = np.sort(rng.normal(size=k - 1)).astype(np.float32)
        np.testing.assert_array_equal(assign(values, boundaries), np.searchsorted(boundaries, values, side="left"))


@pytest.mark.parametrize("k", [2, 5, 16, 256])
def test_every_clustered_layer_has_at_most_k_values(tiny, k):
    small = compress(tiny, CompressionPlan(cluster=ClusterConfig(k)))
    for n in LAYERS:
        assert np.unique(weight(small, n)).size <= k
    state = compression_state(small)
    for n, layer in state.layers.items():
        np.testing.assert_array_equal(layer.codebook[layer.indices], weight(small, n))


def test_sparsity_is_preserved_and_zeros_take_no_centroid(tiny):
    plan = CompressionPlan(prune=PruneConfig(0.7), cluster=ClusterConfig(8))
    pruned = compress(tiny, CompressionPlan(prune=PruneConfig(0.7)))
    small = compress(tiny, plan)
    for n in LAYERS:
        w, before = weight(small, n), weight(pruned, n)
        np.testing.assert_array_equal(w == 0, before == 0)  # zeros stay zero, nothing else becomes zero
        assert np.unique(w[w != 0]).size <= 8
        assert 0 not in compression_state(small).layers[n].codebook


def test_without_preserve_sparsity_zeros_are_clustered(tiny):
    plan = CompressionPlan(prune=PruneConfig(0.3, scope="layer"), cluster=ClusterConfig(2, preserve_sparsity=False))
    w = weight(compress(tiny, plan), "fc1")
    assert np.unique(w).size <= 2
    assert np.mean(w == 0) < 0.3  # the zeros joined a cluster whose centroid is not zero


def test_clustering_is_deterministic_for_a_seed(tiny):
    plan = CompressionPlan(cluster=ClusterConfig(8), seed=7)
    a, b = compress(tiny, plan), compress(tiny, plan)
    for n in LAYERS:
        np.testing.assert_array_equal(weight(a, n), weight(b, n))
    rng = np.random.default_rng(0)
    values = rng.normal(size=(50, 50)).astype(np.float32)
    first = cluster_weights(values, ClusterConfig(8), rng=np.random.default_rng(1))
    again = cluster_weights(values, ClusterConfig(8), rng=np.random.default_rng(1))
    np.testing.assert_array_equal(first[0], again[0])
    np.testing.assert_array_equal(first[1], again[1])


def test_clustering_error_is_smaller_than_a_uniform_grid():
    rng = np.random.default_rng(0)
    values = rng.laplace(0, 0.02, 100_000).astype(np.float32)
    result = kmeans_1d(values, 16, rng=np.random.default_rng(0))
    err = np.mean((values - result.centroids[result.labels]) ** 2)
    grid = np.linspace(values.min(), values.max(), 16)
    err_grid = np.mean((values - grid[np.argmin(np.abs(values[:, None] - grid[None]), axis=1)]) ** 2)
    assert err < 0.5 * err_grid
