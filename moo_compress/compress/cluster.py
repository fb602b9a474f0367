"""Per-layer weight clustering with an exact 1-D k-means that exploits sorted order.

In one dimension every k-means cluster is a contiguous run of the sorted values, bounded by the
midpoints between neighbouring centroids. So the values are sorted once and their prefix sums taken;
a Lloyd iteration is then ``k - 1`` binary searches for the run boundaries and ``k`` prefix-sum
differences for the new means -- O(k log n) instead of the O(n k) of a distance matrix. The final
assignment of the unsorted values is ``k - 1`` vectorised comparisons. Iterating until the partition
stops changing gives exactly the fixed point of Lloyd's algorithm from the same initial centroids; by
default it stops earlier, when the centroids move less than a small tolerance (as scikit-learn does).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from moo_compress.compress.config import ClusterConfig

__all__ = ["KMeansResult", "kmeans_1d", "assign", "cluster_weights"]

_INIT_SAMPLE = 16384  # k-means++ seeds from this many evenly spaced order statistics
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


def _init_kmeanspp(sorted_values: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
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
    if init == "linear":
        centroids = np.unique(np.linspace(float(s[0]), float(s[-1]), n_clusters))
    else:
        centroids = _init_kmeanspp(s, n_clusters, rng if rng is not None else np.random.default_rng(0))
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
        init: ``kmeans++`` (D^2 sampling with ``rng``) or ``linear`` (evenly spaced over [min, max]).
        rng: Random generator for k-means++; the same seed gives the same result.
        max_iter: Iteration limit.
        tol: Stop when the summed squared centroid shift is below ``tol`` times the variance of the
            values (scikit-learn's rule); 0 iterates to the exact fixed point.
    """
    values = np.ascontiguousarray(values, dtype=np.float32).ravel()
    if values.size == 0:
        return KMeansResult(np.zeros(0, np.float32), np.zeros(0, np.int16), 0, True)
    centroids, boundaries, remap, iterations, converged = _fit_sorted(
        np.sort(values), n_clusters, init=init, rng=rng, max_iter=max_iter, tol=tol
    )
    labels = assign(values, boundaries)
    return KMeansResult(centroids, labels if remap is None else remap[labels], iterations, converged)


def cluster_weights(
    weights: np.ndarray, config: ClusterConfig, *, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Clusters one layer's weights.

    Args:
        weights: The (possibly pruned) float32 weights, any shape.
        config: Cluster count, initialisation and sparsity preservation.
        rng: Random generator (k-means++).

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
