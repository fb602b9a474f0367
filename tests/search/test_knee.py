"""Knee-point methods on analytic fronts whose knees are known."""

from __future__ import annotations

import numpy as np
import pytest

from moo_compress.errors import ConfigError
from moo_compress.search.knee import (
    closest_to_ideal,
    high_tradeoff_points,
    nbi_knee,
    normalize,
    most_robust_with_ratio,
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
    """sqrt(f1) + sqrt(f2) + sqrt(f3) = 1: by symmetry and convexity both knees are at f = 1/9."""
    w = np.random.default_rng(0).dirichlet(np.ones(3), size=2000)
    F = np.vstack([w**2, [[1 / 9, 1 / 9, 1 / 9]]])
    for method in (nbi_knee, closest_to_ideal):
        assert F[method(F)] == pytest.approx([1 / 9] * 3, abs=0.01)


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
