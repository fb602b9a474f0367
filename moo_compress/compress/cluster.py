"""Per-layer weight clustering: exact 1-D k-means on sorted values, from a near-optimal start.

In one dimension every k-means cluster is a contiguous run of the sorted values, bounded by the
midpoints between neighbouring centroids. So the values are sorted once and their prefix sums taken;
a Lloyd iteration is then ``k - 1`` binary searches for the run boundaries and ``k`` prefix-sum
differences for the new means -- O(k log n) instead of the O(n k) of a distance matrix. The final
assignment of the unsorted values is ``k - 1`` vectorised comparisons. Iterating until the partition
stops changing gives exactly the fixed point of Lloyd's algorithm from the same initial centroids; by
default it stops earlier, when the centroids move less than a small tolerance (as scikit-learn does).

Lloyd only finds a local optimum, so where it starts matters. ``ClusterConfig``'s default start,
``init="optimal"``, is the globally optimal k-means of a fine binning of the values, found by dynamic
programming (the idea of Ckmeans.1d.dp): optimal clusters are contiguous runs, so with ``D[m][j]`` the
least squared error of ``m`` clusters over the first ``j`` bins, ``D[m][j] = min_i D[m-1][i] +
SSE(i, j)``, and the best split ``i`` never decreases as ``j`` grows, which divide and conquer
exploits: O(k B log B) for B bins, one vectorised step per recursion level computing all of that
level's midpoints. A bin is summarised exactly by its count, sum and sum of squares, so ``SSE(i, j)``
is the exact error of any run of bins. The bins are the union of equal-count cuts (resolution where
the weights are dense) and equal-width cuts (resolution in the sparse tails, where outliers want a
centroid of their own); a run of equal values is never split, and a layer with no more distinct
values than the bin budget (64 bins per cluster, 2048 to 8192) gets one bin per value, so the DP is
then the exact optimum. Lloyd then polishes the DP centroids on the real values. A Lloyd step never
increases the inertia, so the result's inertia is at most the binned optimum, and that differs from
the true optimum only by where each cluster boundary falls inside one fine bin (measured: within
0.013% for k <= 32). The start is deterministic. ``"kmeans++"`` (one D^2-sampled start) and
``"linear"`` (evenly spaced centroids) remain available.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from moo_compress.compress.config import ClusterConfig
from moo_compress.errors import ConfigError

__all__ = ["KMeansResult", "kmeans_1d", "init_kmeanspp", "assign", "cluster_weights"]

_INIT_SAMPLE = 16384  # k-means++ seeds from this many evenly spaced order statistics
# Bins of the optimal start's DP: 64 per cluster, within [2048, 8192]. Cluster boundaries may only fall on
# bin edges, which costs about (bin width)^2, so the gap to the true optimum shrinks about as (k / bins)^2
# while the DP's time grows as k * bins * log(bins). Measured (benchmarks/bench_clustering.py): on ResNet-20
# the gap is at most 1.3e-4 for k <= 32 and 1.1e-4 for k = 64 (4e-4 for k = 256), and a VGG-19 layer takes
# 1.2-1.7x the time of one k-means++ start (a small layer pays the DP's fixed cost, 2-30 ms).
_MIN_BINS, _BINS_PER_CLUSTER, _MAX_BINS = 2048, 64, 8192
_MAX_ITER = 300
_TOL = 1e-6


@dataclass(frozen=True)
class KMeansResult:
    """A 1-D k-means solution.

    Attributes:
        centroids: float32, ascending, at most k (clusters that end empty are dropped).
        labels: int16 cluster index of every input value.
        iterations: Lloyd updates before the final partition (whose exact means are the centroids).
        converged: Whether the tolerance (or a fixed point) was reached within the iteration limit.
    """

    centroids: np.ndarray
    labels: np.ndarray
    iterations: int
    converged: bool


def init_kmeanspp(sorted_values: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """k-means++ initial centroids of sorted 1-D values (``k`` of them), drawn with ``rng``."""
    # D^2 sampling on evenly spaced order statistics: same distribution as the data, O(k * sample).
    n = sorted_values.size
    sample = sorted_values[np.linspace(0, n - 1, min(n, _INIT_SAMPLE)).astype(np.int64)].astype(np.float64)
    centers = [sample[rng.integers(sample.size)]]
    d2 = (sample - centers[0]) ** 2
    for _ in range(k - 1):
        total = d2.sum()
        if total <= 0:
            break
        pick = int(np.searchsorted(np.cumsum(d2), rng.random() * total, side="right"))
        centers.append(sample[min(pick, sample.size - 1)])
        np.minimum(d2, (sample - centers[-1]) ** 2, out=d2)
    return np.unique(np.asarray(centers))


def _bin_edges(s: np.ndarray, budget: int) -> np.ndarray:
    """Start indices (into sorted ``s``, then ``n``) of at most about ``budget`` bins; equal values share one."""
    n = s.size
    changes = s[1:] != s[:-1]
    if np.count_nonzero(changes) < budget:  # at most ``budget`` distinct values: one bin each, the DP is exact
        return np.concatenate([[0], np.flatnonzero(changes) + 1, [n]])
    half = budget // 2
    by_count = np.searchsorted(s, s[(np.arange(1, half) * n) // half], side="left")
    by_width = np.searchsorted(s, np.linspace(float(s[0]), float(s[-1]), half + 1)[1:-1].astype(s.dtype), side="left")
    # side="left" puts every cut at the start of a run of equal values; unique drops empty bins
    return np.unique(np.concatenate([[0], by_count, by_width, [n]]))


def _recursion_levels(size: int) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """``(first, last, middle)`` of the ranges of each level of a bisection of ``range(size)``, top first."""
    levels = []
    first, last = np.array([0]), np.array([size - 1])
    while first.size:
        middle = (first + last) // 2
        levels.append((first, last, middle))
        left, right = first < middle, middle < last
        first, last = np.concatenate([first[left], middle[right] + 1]), np.concatenate([middle[left] - 1, last[right]])
    return levels


def _optimal_runs(count: np.ndarray, total: np.ndarray, square: np.ndarray, k: int) -> np.ndarray:
    """Bin edges ``0 = e_0 < ... < e_k = B`` of the k contiguous runs of bins with least squared error.

    ``count``, ``total`` and ``square`` are cumulative over the B bins (length B + 1, starting at 0).
    """
    b = count.size - 1

    def sse(i: np.ndarray, j: np.ndarray) -> np.ndarray:  # squared error of bins i..j-1 around their mean
        s = total[j] - total[i]
        return (square[j] - square[i]) - s * s / (count[j] - count[i])

    best = np.full(b + 1, np.inf)
    best[1:] = sse(np.zeros(b, np.int64), np.arange(1, b + 1))
    # split[m, j]: first bin of the last of m runs over bins 0..j-1; two spare columns hold sentinels
    split = np.zeros((k + 1, b + 2), dtype=np.int64)
    # m runs over the first j bins need j >= m, and k - m bins must remain for the later runs: j runs
    # over m .. m + size - 1. Divide and conquer over that range: the best split of the middle j of
    # [first, last] lies between the best splits of first - 1 and last + 1 (splits are monotone in
    # j), and one step computes every middle of one recursion level, whose shape never depends on m.
    levels = _recursion_levels(b - k + 1)
    for m in range(2, k + 1):
        # cost of split i for j: best[i] + SSE(i, j) = reach[i] - (total[j] - total[i])^2 / (count[j] - count[i])
        # + square[j], whose last term is the same for every i and so is added after the minimum
        reach = best - square
        current = np.full(b + 1, np.inf)
        bound = split[m]
        bound[m - 1], bound[m + b - k + 1] = m - 1, m + b - k - 1  # the splits "left of" and "right of" the range
        for first, last, middle in levels:
            j = middle + m
            low = bound[first + m - 1]
            sizes = np.minimum(bound[last + m + 1], j - 1) - low + 1
            starts = np.cumsum(sizes) - sizes
            i = np.arange(starts[-1] + sizes[-1]) + np.repeat(low - starts, sizes)
            s = np.repeat(total[j], sizes) - total[i]
            cost = reach[i] - s * s / (np.repeat(count[j], sizes) - count[i])
            least = np.minimum.reduceat(cost, starts)
            current[j] = least + square[j]
            # the leftmost minimiser keeps the splits monotone when costs tie
            bound[j] = np.minimum.reduceat(np.where(cost <= np.repeat(least, sizes), i, b), starts)
        best = current
    edges = [b]
    for m in range(k, 1, -1):
        edges.append(int(split[m, edges[-1]]))
    edges.append(0)
    return np.asarray(edges[::-1], dtype=np.int64)


def _bin_budget(k: int) -> int:
    return min(max(_MIN_BINS, _BINS_PER_CLUSTER * k), _MAX_BINS)


def _init_optimal(s: np.ndarray, k: int, prefix: np.ndarray) -> np.ndarray:
    """Means of the optimal k-means of the binned sorted values ``s`` (``prefix``: cumulative sums of ``s``)."""
    edges = _bin_edges(s, _bin_budget(k))
    b = edges.size - 1
    if b <= k:  # as many bins as clusters: every bin is a cluster
        runs = edges
    else:
        square = np.zeros(b + 1)
        np.cumsum(np.add.reduceat(np.square(s, dtype=np.float64), edges[:-1]), out=square[1:])
        runs = edges[_optimal_runs(edges.astype(np.float64), prefix[edges], square, k)]
    return (prefix[runs[1:]] - prefix[runs[:-1]]) / np.diff(runs)


def _boundaries(centroids: np.ndarray) -> np.ndarray:
    # float32, so that binary searches and comparisons run on the float32 values without copies
    return ((centroids[:-1] + centroids[1:]) / 2).astype(np.float32)


def assign(values: np.ndarray, boundaries: np.ndarray) -> np.ndarray:
    """Cluster index (int16) of every value: the number of (ascending) ``boundaries`` strictly below it."""
    if boundaries.size > 255:
        return np.searchsorted(boundaries, values, side="left").astype(np.int16)
    # k - 1 vectorised comparisons, counted in uint8 to halve memory traffic, beat a binary search per value
    labels = np.zeros(values.shape, dtype=np.uint8)
    above = np.empty(values.shape, dtype=bool)
    for b in boundaries:
        np.greater(values, b, out=above)
        labels += above.view(np.uint8)
    return labels.astype(np.int16)


def _fit_sorted(
    s: np.ndarray, n_clusters: int, *, init: str, rng: np.random.Generator | None, max_iter: int, tol: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, int, bool]:
    """Lloyd on sorted values; returns (centroids, boundaries, label remap or None, iterations, converged)."""
    n = s.size
    prefix = np.empty(n + 1, dtype=np.float64)
    prefix[0] = 0.0
    np.cumsum(s, dtype=np.float64, out=prefix[1:])
    if init == "optimal":
        centroids = _init_optimal(s, n_clusters, prefix)
    elif init == "linear":
        centroids = np.unique(np.linspace(float(s[0]), float(s[-1]), n_clusters))
    else:
        centroids = init_kmeanspp(s, n_clusters, rng if rng is not None else np.random.default_rng(0))
    # as scikit-learn: stop when the squared centroid shift falls below tol * variance
    tolerance = tol * float(np.var(s[:: max(1, n // _INIT_SAMPLE)], dtype=np.float64))
    previous = None
    converged = False
    iterations = 0
    while True:
        boundaries = _boundaries(centroids)
        cuts = np.searchsorted(s, boundaries, side="right")  # values <= boundary go left
        if previous is not None and np.array_equal(cuts, previous):
            converged = True  # a fixed point: the means would not move
            break
        if iterations == max_iter:
            break
        sums, counts = _run_sums(prefix, cuts, n)
        # an empty cluster keeps its centroid, which stays between its neighbours' new means
        updated = np.where(counts > 0, sums / np.maximum(counts, 1), centroids)
        shift = float(np.sum((updated - centroids) ** 2))
        centroids, previous = updated, cuts
        iterations += 1
        if shift <= tolerance:
            converged = True
            break
    # exact means of the final partition, which ``assign`` reproduces from the same boundaries
    sums, counts = _run_sums(prefix, cuts, n)
    nonempty = counts > 0
    remap = None if nonempty.all() else (np.cumsum(nonempty) - 1).astype(np.int16)
    means = (sums[nonempty] / counts[nonempty]).astype(np.float32)
    return means, boundaries, remap, iterations, converged


def _run_sums(prefix: np.ndarray, cuts: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    edges = np.concatenate([[0], cuts, [n]])
    return prefix[edges[1:]] - prefix[edges[:-1]], np.diff(edges)


def kmeans_1d(
    values: np.ndarray,
    n_clusters: int,
    *,
    init: str = "kmeans++",
    rng: np.random.Generator | None = None,
    max_iter: int = _MAX_ITER,
    tol: float = _TOL,
) -> KMeansResult:
    """Exact Lloyd k-means of a 1-D array (see the module docstring for how it stays fast).

    Args:
        values: 1-D float array.
        n_clusters: Number of clusters k (the result may have fewer when values repeat).
        init: ``optimal`` (the optimum over fine bins, by dynamic programming; deterministic, and the
            default of :class:`ClusterConfig`), ``kmeans++`` (D^2 sampling with ``rng``; kept as this
            function's default so that existing callers get the same numbers) or ``linear`` (evenly
            spaced over [min, max]).
        rng: Random generator for k-means++; the same seed gives the same result.
        max_iter: Iteration limit.
        tol: Stop when the summed squared centroid shift is below ``tol`` times the variance of the
            values (scikit-learn's rule); 0 iterates to the exact fixed point.

    Raises:
        ConfigError: if ``init`` is not one of ``ClusterConfig.INITS``.
    """
    if init not in ClusterConfig.INITS:
        raise ConfigError(f"kmeans_1d: unknown init {init!r}; use one of {', '.join(ClusterConfig.INITS)}")
    values = np.ascontiguousarray(values, dtype=np.float32).ravel()
    if values.size == 0:
        return KMeansResult(np.zeros(0, np.float32), np.zeros(0, np.int16), 0, True)
    centroids, boundaries, remap, iterations, converged = _fit_sorted(
        np.sort(values), n_clusters, init=init, rng=rng, max_iter=max_iter, tol=tol
    )
    labels = assign(values, boundaries)
    return KMeansResult(centroids, labels if remap is None else remap[labels], iterations, converged)


def cluster_weights(
    weights: np.ndarray, config: ClusterConfig, *, rng: np.random.Generator | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Clusters one layer's weights.

    Args:
        weights: The (possibly pruned) float32 weights, any shape.
        config: Cluster count, initialisation and sparsity preservation.
        rng: Random generator of ``init="kmeans++"`` (None: seed 0); ``"optimal"`` and ``"linear"``
            are deterministic and ignore it.

    Returns:
        ``(codebook, indices)``: float32 centroids (at most ``n_clusters``, ascending) and an int16
        array shaped like ``weights`` holding each weight's centroid, or -1 for weights that stay
        zero (``preserve_sparsity``).
    """
    flat = np.ascontiguousarray(weights, dtype=np.float32).reshape(-1)
    present = flat != 0 if config.preserve_sparsity else None
    if present is not None and present.all():
        present = None
    if present is None:
        s = np.sort(flat)
    else:
        s = flat[present]  # a fresh copy: sort it in place
        s.sort()
    if s.size == 0:
        return np.zeros(0, np.float32), np.full(weights.shape, -1, dtype=np.int16)
    codebook, boundaries, remap, _, _ = _fit_sorted(
        s, config.n_clusters, init=config.init, rng=rng, max_iter=_MAX_ITER, tol=_TOL
    )
    del s
    # assigning every weight and then blanking the zeros beats gathering and scattering the non-zeros
    indices = assign(flat, boundaries)
    if remap is not None:
        indices = remap[indices]
    if present is not None:
        np.copyto(indices, np.int16(-1), where=~present)
    return codebook, indices.reshape(weights.shape)
