"""Knee points of a Pareto front, and the user-facing picks built on them.

Every method takes an objective matrix ``F`` (n points x m objectives, all *minimised*, as pymoo
expects) and works in normalised objective space: each column is mapped to [0, 1] by the front's own
ideal (column minimum) and nadir (column maximum), so objectives in different units weigh the same.

- :func:`high_tradeoff_points`: pymoo's ``HighTradeoffPoints`` (Rachmawati & Srinivasan 2009) on the
  normalised front. pymoo 0.6.2 ignores its ``epsilon`` argument (always 0.125), which is only
  meaningful on normalised objectives, hence the normalisation here.
- :func:`nbi_knee`: the normal-boundary-intersection knee (Das & Dennis 1998; Das 1999): the point
  farthest from the hyperplane through the anchors that span the convex hull of individual minima
  (CHIM), on the side of the ideal point. The anchor of objective j is the front member that minimises
  objective j (ties broken by the smallest sum of the other normalised objectives, so every anchor is
  itself non-dominated); see :func:`_anchors` and :func:`_hyperplane`.
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


def _anchors(N: np.ndarray) -> np.ndarray:
    """Indices of the CHIM anchors of the normalised front ``N``, one per objective (may repeat).

    The anchor of objective j is the point that minimises objective j (its individual minimum, as in
    Das & Dennis's normal-boundary intersection); among points tied on objective j, the one with the
    smallest sum of the other normalised objectives wins (then the lowest index), so the anchor is
    non-dominated. These are *not* the achievement-scalarising "extreme points" of NSGA-III, which are
    the points nearest each axis (best in all objectives but j); the two sets are in general the same
    only for two objectives.

    Where an individual minimum is a whole edge of the front (weakly Pareto-optimal points), a sampled
    front has no exact ties there: the anchor is whichever sample happens to be lowest in j, which can
    tilt the plane.
    """
    m = N.shape[1]
    total = N.sum(axis=1)
    anchors = []
    for j in range(m):
        others = total - N[:, j]
        anchors.append(np.lexsort((others, N[:, j]))[0])  # primary key: objective j, then the others' sum
    return np.array(anchors, dtype=int)


def _hyperplane(N: np.ndarray) -> tuple[np.ndarray, float]:
    """Normal ``n`` and offset ``c`` of the CHIM plane ``n.x = c`` through the anchors of ``N``.

    With the anchors as the rows of ``A`` (see :func:`_anchors`), the plane through them is ``n.x = 1``
    with ``A n = 1``; in normalised space the ideal is the origin, so ``n.x < 1`` is the ideal's side.
    Degenerate anchors (fewer distinct anchors than objectives, a singular ``A``, or a normal with a
    non-finite or negative component, i.e. a plane tilted past a coordinate axis) fall back to the
    equal-weight plane ``sum(x) = c`` with ``c`` the mean objective sum of the anchors.
    """
    m = N.shape[1]
    A = N[_anchors(N)]
    if len(np.unique(A, axis=0)) == m:
        try:
            normal = np.linalg.solve(A, np.ones(m))
            if np.all(np.isfinite(normal)) and np.linalg.norm(normal) > 0 and np.all(normal >= 0):
                return normal, 1.0
        except np.linalg.LinAlgError:
            pass
    # degenerate anchors (repeated points, fewer distinct anchors than objectives, singular or tilted past
    # an axis): the equal-weight plane through the anchors' mean objective sum
    return np.ones(m), float(A.sum(axis=1).mean())


def nbi_knee(F: np.ndarray) -> int:
    """Index of the NBI knee: the point farthest from the CHIM plane, toward the ideal.

    The CHIM plane passes through each objective's minimiser (its anchor, see :func:`_anchors`) in
    normalised objective space; distance is measured along the plane's normal, positive on the ideal's
    side, and the point with the largest distance is returned (the first on ties).
    """
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
