import numpy as np
import pytest
from torch import nn

from moo_compress.compress import (
    ClusterConfig,
    CompressionPlan,
    PruneConfig,
    cluster,
    compress,
    compression_state,
    kmeans_1d,
)
from moo_compress.compress.cluster import assign, cluster_weights
from moo_compress.errors import ConfigError

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


# --- init="optimal": the DP optimum over fine bins, polished by Lloyd ---

KS = (4, 8, 16, 32)


def _exact_optimum(values, k):
    """Least squared error of k clusters by the textbook O(k n^2) DP over the sorted values, and its means."""
    x = np.sort(values.astype(np.float64))
    n = x.size
    s1 = np.concatenate([[0.0], np.cumsum(x)])
    s2 = np.concatenate([[0.0], np.cumsum(x * x)])
    cost = np.full((k + 1, n + 1), np.inf)
    cost[0, 0] = 0.0
    start = np.zeros((k + 1, n + 1), dtype=int)
    for m in range(1, k + 1):
        for j in range(m, n + 1):
            i = np.arange(m - 1, j)  # the m-th cluster is x[i:j]
            total = cost[m - 1, i] + (s2[j] - s2[i]) - (s1[j] - s1[i]) ** 2 / (j - i)
            start[m, j] = i[np.argmin(total)]
            cost[m, j] = total.min()
    means, j = [], n
    for m in range(k, 0, -1):
        i = start[m, j]
        means.append(x[i:j].mean())
        j = i
    return cost[k, n], np.array(means[::-1])


def _inertia(values, codebook, indices):
    """Squared distance of every clustered value to the centroid it was given (-1: not clustered)."""
    v, idx = values.reshape(-1).astype(np.float64), indices.reshape(-1)
    kept = idx >= 0
    return float(np.sum((v[kept] - codebook.astype(np.float64)[idx[kept]]) ** 2))


def _best_kmeanspp(values, k, starts=16):
    """Least inertia of ``starts`` seeded k-means++ runs, each scored by its nearest-centroid assignment."""
    x32 = np.sort(values[values != 0].astype(np.float32))
    x = x32.astype(np.float64)
    s1 = np.concatenate([[0.0], np.cumsum(x)])
    s2 = np.concatenate([[0.0], np.cumsum(x * x)])
    best = np.inf
    for seed in range(starts):
        # the centroids cluster_weights(init="kmeans++") gives, without sorting and assigning 16 times
        c, *_ = cluster._fit_sorted(
            x32, k, init="kmeans++", rng=np.random.default_rng(seed), max_iter=cluster._MAX_ITER, tol=cluster._TOL
        )
        c = c.astype(np.float64)
        # sum over each centroid's run of (x - c)^2 = S2 - 2 c S1 + c^2 n, from prefix sums
        edges = np.concatenate([[0], np.searchsorted(x, (c[:-1] + c[1:]) / 2), [x.size]])
        a, b = edges[:-1], edges[1:]
        best = min(best, float(np.sum((s2[b] - s2[a]) - 2 * c * (s1[b] - s1[a]) + c * c * (b - a))))
    return best


def _synthetic(name, n, rng):
    if name == "mixture":
        parts = [rng.normal(-0.05, 0.01, n // 2), rng.normal(0.02, 0.02, n // 3), rng.normal(0.3, 0.05, n - 5 * n // 6)]
        return np.concatenate(parts)
    if name == "laplace":
        return rng.laplace(0, 0.02, n)
    return 0.01 * rng.standard_t(1.5, n)  # heavy tails: a few huge outliers


@pytest.mark.parametrize("name", ["mixture", "laplace", "heavy"])
@pytest.mark.parametrize("k", [2, 3, 5, 8])
def test_optimal_matches_the_exact_dp_on_small_data(name, k):
    values = _synthetic(name, 300, np.random.default_rng(k)).astype(np.float32)
    expected, means = _exact_optimum(values, k)
    result = kmeans_1d(values, k, init="optimal")
    np.testing.assert_allclose(_inertia(values, result.centroids, result.labels), expected, rtol=1e-6)
    np.testing.assert_allclose(result.centroids, means, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("k", [2, 4, 6])
def test_optimal_on_coarse_bins_stays_close_to_the_exact_optimum(monkeypatch, k):
    # 24 bins for 400 distinct values: the binned path, whose boundaries may only fall on bin edges
    monkeypatch.setattr(cluster, "_bin_budget", lambda _: 24)
    values = _synthetic("mixture", 400, np.random.default_rng(10 + k)).astype(np.float32)
    result = kmeans_1d(values, k, init="optimal")
    assert _inertia(values, result.centroids, result.labels) <= 1.01 * _exact_optimum(values, k)[0]


@pytest.mark.parametrize("name", ["mixture", "laplace", "heavy"])
def test_optimal_is_within_1_percent_of_16_kmeanspp_starts(name):
    rng = np.random.default_rng(3)
    w = _synthetic(name, 60_000, rng).astype(np.float32).reshape(300, 200)
    pruned = np.where(np.abs(w) > np.quantile(np.abs(w), 0.6), w, 0).astype(np.float32)
    for values in (w, pruned):
        for k in KS:
            codebook, indices = cluster_weights(values, ClusterConfig(k), rng=np.random.default_rng(0))
            assert _inertia(values, codebook, indices) <= 1.01 * _best_kmeanspp(values, k)


def test_optimal_preserves_sparsity_and_ignores_the_rng():
    rng = np.random.default_rng(4)
    w = rng.laplace(0, 0.05, (64, 3, 3, 3)).astype(np.float32)
    w[np.abs(w) < 0.04] = 0
    first = cluster_weights(w, ClusterConfig(8), rng=np.random.default_rng(1))
    again = cluster_weights(w, ClusterConfig(8), rng=np.random.default_rng(2))
    np.testing.assert_array_equal(first[0], again[0])
    np.testing.assert_array_equal(first[1], again[1])
    codebook, indices = first
    assert indices.shape == w.shape and indices.dtype == np.int16 and codebook.dtype == np.float32
    np.testing.assert_array_equal(indices == -1, w == 0)
    assert codebook.size == 8 and np.all(np.diff(codebook) > 0) and 0 not in codebook


def test_optimal_edge_cases():
    def fit(values, k):
        return kmeans_1d(np.array(values, np.float32), k, init="optimal")

    assert fit([], 4).centroids.size == 0
    assert fit([0.25], 4).centroids.tolist() == [0.25]
    assert fit([0.5] * 50, 4).centroids.tolist() == [0.5]
    few = fit([1, 1, 2, 2, 2, 7], 16)  # fewer distinct values than clusters: one centroid each
    np.testing.assert_array_equal(few.centroids, [1, 2, 7])
    np.testing.assert_array_equal(few.labels, [0, 0, 1, 1, 1, 2])
    two = fit([1, 5, 6, 100], 2)  # k = 2: the outlier alone beats any other split
    np.testing.assert_array_equal(two.centroids, [4, 100])
    exact = fit([-3, -1, 0, 2, 2, 9], 6)  # as many distinct values as clusters
    np.testing.assert_array_equal(exact.centroids, [-3, -1, 0, 2, 9])
    codebook, indices = cluster_weights(np.zeros((2, 3), np.float32), ClusterConfig(4), rng=np.random.default_rng())
    assert codebook.size == 0 and np.all(indices == -1)
    with pytest.raises(ConfigError, match="optimal"):
        kmeans_1d(np.ones(3, np.float32), 2, init="best")


def _shared_layers(arch, weights_dir):
    """Every Conv2d/Linear weight, unpruned and after 70% global magnitude pruning."""
    from moo_compress.models import load_pretrained

    model = load_pretrained(arch, "cifar10", weights_dir=weights_dir).model
    weights = [m.weight.detach().float().numpy() for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    magnitudes = np.concatenate([np.abs(w).ravel() for w in weights])
    threshold = np.partition(magnitudes, int(0.7 * magnitudes.size))[int(0.7 * magnitudes.size)]
    return weights + [np.where(np.abs(w) >= threshold, w, 0).astype(np.float32) for w in weights]


def _check_shared_model(arch, weights_dir):
    worst = 0.0
    for values in _shared_layers(arch, weights_dir):
        for k in KS:
            codebook, indices = cluster_weights(values, ClusterConfig(k), rng=np.random.default_rng(0))
            worst = max(worst, _inertia(values, codebook, indices) / _best_kmeanspp(values, k))
    assert worst <= 1.01


@pytest.mark.shared_data
@pytest.mark.slow
def test_optimal_is_within_1_percent_on_every_resnet20_layer(shared_weights_dir):
    _check_shared_model("resnet20", shared_weights_dir)


@pytest.mark.shared_data
@pytest.mark.slow
def test_optimal_is_within_1_percent_on_every_vgg19_layer(shared_weights_dir):
    _check_shared_model("vgg19", shared_weights_dir)
