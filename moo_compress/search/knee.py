"""Knee points of a Pareto front, and the user-facing picks built on them.

Every method takes an objective matrix ``F`` (n points x m objectives, all *minimised*, as pymoo
expects) and works in normalised objective space: each column is mapped to [0, 1] by the front's own
ideal (column minimum) and nadir (column maximum), so objectives in different units weigh the same.

- :func:`high_tradeoff_points`: pymoo's ``HighTradeoffPoints`` (Rachmawati & Srinivasan 2009) on the
  normalised front. pymoo 0.6.2 ignores its ``epsilon`` argument (always 0.125), which is only
  meaningful on normalised objectives, hence the normalisation here.
- :func:`nbi_knee`: the point farthest from the hyperplane through the extreme points, on the side of
  the ideal point (Das 1999, the normal-boundary-intersection knee).
- :func:`closest_to_ideal`: the point with the smallest Euclidean distance to the ideal (0, ..., 0).
- :func:`most_robust_with_ratio` and :func:`smallest_within_accuracy_drop`: picks phrased in the
  units users think in.
"""

from __future__ import annotations

import warnings

import numpy as np

from moo_compress.errors import ConfigError

__all__ = [
    "normalize",
    "high_tradeoff_points",
    "nbi_knee",
    "closest_to_ideal",
    "most_robust_with_ratio",
    "smallest_within_accuracy_drop",
]


def _check(F: np.ndarray) -> np.ndarray:
    F = np.asarray(F, dtype=float)
    if F.ndim != 2 or F.shape[0] == 0 or F.shape[1] < 2:
        raise ConfigError(f"F must be a non-empty (points x objectives) matrix with >= 2 objectives, got {F.shape}")
    if not np.isfinite(F).all():
        raise ConfigError("F contains NaN or infinite values; drop failed candidates before looking for knees")
    return F


def normalize(F: np.ndarray) -> np.ndarray:
    """Maps every column of ``F`` to [0, 1] (ideal -> 0, nadir -> 1); constant columns become 0."""
    F = _check(F)
    ideal, nadir = F.min(axis=0), F.max(axis=0)
    span = np.where(nadir > ideal, nadir - ideal, 1.0)
    return (F - ideal) / span


def high_tradeoff_points(F: np.ndarray) -> np.ndarray:
    """Indices of the high trade-off points (possibly empty), by pymoo's HighTradeoffPoints.

    A point's trade-off is the least sacrifice per unit of gain when moving to any neighbour within a
    radius of 0.125 in normalised space; outliers of the upper tail (>= 2 sigma, else the maximum if it
    exceeds 1 sigma) are returned.
    """
    from pymoo.mcdm.high_tradeoff import HighTradeoffPoints

    N = normalize(F)
    unique = np.unique(N, axis=0)
    if len(unique) < 3:  # trade-offs need neighbours on both sides
        return np.array([], dtype=int)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        found = HighTradeoffPoints()._do(N)
    return np.array(sorted(found), dtype=int) if found is not None else np.array([], dtype=int)


def _hyperplane(N: np.ndarray) -> tuple[np.ndarray, float]:
    """Normal ``n`` and offset ``c`` of the plane ``n.x = c`` through the extreme points of ``N``."""
    m = N.shape[1]
    # Extreme point of axis j: the minimiser of the achievement scalarising function with weight 1 on
    # objective j and ~0 elsewhere, i.e. the point worst in j and best in all others (as NSGA-III).
    weights = np.full((m, m), 1e-6) + np.eye(m)
    extremes = np.array([N[np.argmin(np.max(N / w, axis=1))] for w in weights])
    try:
        normal = np.linalg.solve(extremes, np.ones(m))
        if np.all(np.isfinite(normal)) and np.linalg.norm(normal) > 0 and np.all(normal >= 0):
            return normal, 1.0
    except np.linalg.LinAlgError:
        pass
    # degenerate extremes (repeated points, fewer distinct points than objectives): the equal-weight plane
    normal = np.ones(m)
    return normal, float(extremes.sum(axis=1).mean())


def nbi_knee(F: np.ndarray) -> int:
    """Index of the point farthest from the extreme points' hyperplane, toward the ideal."""
    N = normalize(F)
    if len(N) == 1:
        return 0
    normal, offset = _hyperplane(N)
    distance = (offset - N @ normal) / np.linalg.norm(normal)  # > 0 on the ideal's side
    return int(np.argmax(distance))


def closest_to_ideal(F: np.ndarray) -> int:
    """Index of the point closest (Euclidean) to the ideal point in normalised space."""
    N = normalize(F)
    return int(np.argmin(np.linalg.norm(N, axis=1)))


def most_robust_with_ratio(robustness: np.ndarray, ratio: np.ndarray, min_ratio: float) -> int | None:
    """Index of the most robust point whose compression ratio is at least ``min_ratio`` (None if none).

    Args:
        robustness: Higher is better (e.g. mean corruption accuracy).
        ratio: Compression ratios.
        min_ratio: Smallest acceptable ratio.
    """
    robustness, ratio = np.asarray(robustness, float), np.asarray(ratio, float)
    ok = np.flatnonzero(ratio >= min_ratio)
    if len(ok) == 0:
        return None
    order = np.lexsort((-ratio[ok], -robustness[ok]))  # most robust, then smallest model
    return int(ok[order[0]])


def smallest_within_accuracy_drop(accuracy: np.ndarray, ratio: np.ndarray, baseline_accuracy: float,
                                  max_drop: float) -> int | None:
    """Index of the highest-ratio point within ``max_drop`` of ``baseline_accuracy`` (None if none).

    ``accuracy``, ``baseline_accuracy`` and ``max_drop`` share units (e.g. percentage points).
    """
    accuracy, ratio = np.asarray(accuracy, float), np.asarray(ratio, float)
    ok = np.flatnonzero(accuracy >= baseline_accuracy - max_drop)
    if len(ok) == 0:
        return None
    order = np.lexsort((-accuracy[ok], -ratio[ok]))  # smallest model, then most accurate
    return int(ok[order[0]])
