"""Knee-point methods on analytic fronts whose knees are known."""

from __future__ import annotations

import numpy as np
import pytest

from moo_compress.errors import ConfigError
from moo_compress.search.knee import (
    _anchors,
    _hyperplane,
    closest_to_ideal,
    high_tradeoff_points,
    most_robust_with_ratio,
    nbi_knee,
    normalize,
    smallest_within_accuracy_drop,
)


def convex_front(n: int = 201) -> np.ndarray:
    """f2 = (1 - sqrt(f1))^2: symmetric and convex; the NBI knee and the point closest to the ideal are
    both at f1 = f2 = 1/4 (minimise f1 + f2 and f1^2 + f2^2 along the curve)."""
    f1 = np.linspace(0, 1, n)
    return np.column_stack([f1, (1 - np.sqrt(f1)) ** 2])


def sharp_knee_front() -> np.ndarray:
    """A front of two nearly flat arms meeting at a sharp corner at (0.1, 0.1)."""
    left = np.column_stack([np.linspace(0, 0.1, 11)[:-1], np.linspace(1, 0.1, 11)[:-1]])
    right = np.column_stack([np.linspace(0.1, 1, 11), np.linspace(0.1, 0, 11)])
    return np.vstack([left, right])


def test_normalize_maps_columns_to_unit_interval() -> None:
    N = normalize(np.array([[1.0, 10.0, 5.0], [3.0, 30.0, 5.0]]))
    np.testing.assert_allclose(N, [[0, 0, 0], [1, 1, 0]])


def test_convex_front_knees_are_at_the_analytic_point() -> None:
    F = convex_front()
    for method in (nbi_knee, closest_to_ideal):
        assert F[method(F)] == pytest.approx([0.25, 0.25], abs=0.01)


def test_knees_are_invariant_to_objective_scaling() -> None:
    F = convex_front() * np.array([100.0, 0.01]) + np.array([-5.0, 3.0])
    assert nbi_knee(F) == nbi_knee(convex_front())


def test_sharp_corner_is_found_by_every_method() -> None:
    F = sharp_knee_front()
    corner = int(np.flatnonzero(np.all(np.isclose(F, [0.1, 0.1]), axis=1))[0])
    assert nbi_knee(F) == corner
    assert closest_to_ideal(F) == corner
    assert corner in high_tradeoff_points(F).tolist()


def test_three_objective_convex_front() -> None:
    """sqrt(f1) + sqrt(f2) + sqrt(f3) = 1: by symmetry and convexity both knees are at f = 1/9.

    Each objective's individual minimum is a whole edge of this front (f1 = 0 for every point of
    sqrt(f2) + sqrt(f3) = 1); the CHIM anchor is its member with the smallest f2 + f3, (0, 1/4, 1/4).
    A random sample only gets close to that edge at an arbitrary place, which would tilt the CHIM
    plane, so the three analytic anchors are added to the sample. (The test predates CHIM anchoring:
    the old ASF "extreme points" were the near-axis samples, which a random sample pins down well.)
    """
    w = np.random.default_rng(0).dirichlet(np.ones(3), size=2000)
    anchors = np.full((3, 3), 0.25) - 0.25 * np.eye(3)
    F = np.vstack([w**2, [[1 / 9, 1 / 9, 1 / 9]], anchors])
    np.testing.assert_array_equal(np.sort(_anchors(normalize(F))), [2001, 2002, 2003])
    for method in (nbi_knee, closest_to_ideal):
        assert F[method(F)] == pytest.approx([1 / 9] * 3, abs=0.01)


def flat_front_with_knee() -> np.ndarray:
    """A 3-D front, already normalised (each column spans [0, 1]), lying on the plane f1 + f2 + f3 = 1
    except for three near-axis plans above it and one knee at (0.3, 0.3, 0.3) toward the ideal."""
    return np.array([
        [0.0, 0.5, 0.5], [0.5, 0.0, 0.5], [0.5, 0.5, 0.0],  # 0-2: each objective's minimiser (CHIM anchors)
        [1.0, 0.02, 0.02], [0.02, 1.0, 0.02], [0.28, 0.28, 1.0],  # 3-5: nearest each axis, above the plane
        [0.05, 0.3, 0.65], [0.3, 0.05, 0.65], [0.6, 0.3, 0.1], [0.3, 0.6, 0.1],  # 6-9: flat plans
        [0.3, 0.3, 0.3],  # 10: the knee
    ])


def test_flat_front_knee_is_found_not_an_extreme_plan() -> None:
    """The CHIM plane is the flat front itself, so the bulging point is the only one on its ideal side.

    The old anchoring (achievement scalarising function, NSGA-III's "extreme points") anchored the
    plane on the near-axis plans 3-5 instead; plan 5 sits far above the flat front, the plane tilted
    toward f3, and the old code returned the flat plan 6, (0.05, 0.3, 0.65), at distance 0.251 against
    0.194 for the knee.
    """
    F = flat_front_with_knee()
    assert nbi_knee(F) == 10
    assert nbi_knee(F * np.array([3.0, 0.5, 200.0]) + 7.0) == 10  # same in raw units


def test_anchors_are_the_per_objective_minimisers() -> None:
    N = flat_front_with_knee()
    np.testing.assert_array_equal(_anchors(N), [0, 1, 2])
    convex = normalize(convex_front())
    for j, i in enumerate(_anchors(convex)):
        assert convex[i, j] == 0.0
    # ties on the objective are broken by the smallest sum of the others, so the anchor is not dominated
    tied = np.array([[0.0, 0.6, 0.6], [0.0, 0.5, 0.5], [1.0, 0.0, 0.3], [0.2, 1.0, 0.0]])
    np.testing.assert_array_equal(_anchors(normalize(tied)), [1, 2, 3])
    normal, offset = _hyperplane(N)
    np.testing.assert_allclose(normal / offset, [1.0, 1.0, 1.0])  # the plane f1 + f2 + f3 = 1


def test_degenerate_anchors_fall_back_to_the_equal_weight_plane() -> None:
    # the plane through these anchors has a negative normal component (it does not face the ideal)
    N = np.array([[0.0, 1.0, 1.0], [1.0, 0.0, 1.0], [0.4, 0.4, 0.0]])
    normal, offset = _hyperplane(N)
    np.testing.assert_allclose(normal, [1.0, 1.0, 1.0])
    assert offset == pytest.approx((2 + 2 + 0.8) / 3)
    assert nbi_knee(N) == 2


@pytest.mark.parametrize("F", [
    np.array([[0.0, 1.0, 0.5], [1.0, 0.0, 0.2]]),  # 2 points, 3 objectives: 2 distinct anchors
    np.array([[0.0, 1.0], [0.0, 1.0], [1.0, 0.0], [1.0, 0.0]]),  # duplicate points, 2 objectives
    np.array([[0.0, 1.0, 1.0], [0.0, 1.0, 1.0], [1.0, 0.0, 1.0], [1.0, 1.0, 0.0]]),  # a duplicated anchor
    np.array([[0.2, 0.3, 0.4]] * 3),  # all identical
    np.array([[0.0, 0.0, 0.0], [1.0, 2.0, 3.0], [2.0, 1.0, 0.5]]),  # one point dominates: a single anchor
    np.array([[0.0, 1.0], [0.3, 0.3], [1.0, 0.0]]),  # 2 objectives
])
def test_degenerate_fronts_return_a_valid_index(F: np.ndarray) -> None:
    i = nbi_knee(F)
    assert isinstance(i, int) and 0 <= i < len(F)


def test_tiny_fronts_do_not_crash() -> None:
    single = np.array([[0.3, 0.4, 0.5]])
    assert nbi_knee(single) == 0 and closest_to_ideal(single) == 0
    assert high_tradeoff_points(single).size == 0
    two = np.array([[0.0, 1.0], [1.0, 0.0]])
    assert nbi_knee(two) in (0, 1)


def test_bad_fronts_are_rejected() -> None:
    with pytest.raises(ConfigError, match="NaN"):
        nbi_knee(np.array([[0.0, np.nan], [1.0, 0.0]]))
    with pytest.raises(ConfigError, match=">= 2 objectives"):
        closest_to_ideal(np.array([[1.0], [2.0]]))


def test_user_picks() -> None:
    accuracy = np.array([93.0, 92.5, 91.0, 85.0])
    robustness = np.array([70.0, 72.0, 69.0, 60.0])
    ratio = np.array([1.0, 4.0, 10.0, 30.0])
    assert most_robust_with_ratio(robustness, ratio, 4.0) == 1
    assert most_robust_with_ratio(robustness, ratio, 8.0) == 2
    assert most_robust_with_ratio(robustness, ratio, 50.0) is None
    assert smallest_within_accuracy_drop(accuracy, ratio, 93.0, 2.0) == 2
    assert smallest_within_accuracy_drop(accuracy, ratio, 93.0, 0.1) == 0
    assert smallest_within_accuracy_drop(accuracy, ratio, 99.0, 1.0) is None
