"""Deterministic stratified subsets: the same images for every model evaluated (paired comparisons)."""

from __future__ import annotations

import numpy as np

from moo_compress.errors import ConfigError

__all__ = ["stratified_indices"]


def stratified_indices(labels: np.ndarray, n_per_class: int, *, seed: int = 0) -> np.ndarray:
    """Picks ``n_per_class`` indices of every class, uniformly at random for ``seed``, in ascending order.

    The same labels, count and seed always give the same indices.

    Raises:
        ConfigError: if ``n_per_class`` is not positive or exceeds the smallest class.
    """
    labels = np.asarray(labels)
    if not isinstance(n_per_class, (int, np.integer)) or n_per_class < 1:
        raise ConfigError(f"n_per_class must be a positive integer, got {n_per_class!r}")
    rng = np.random.default_rng(seed)
    chosen = []
    for cls in np.unique(labels):
        members = np.flatnonzero(labels == cls)
        if len(members) < n_per_class:
            raise ConfigError(
                f"class {cls} has only {len(members)} images, fewer than the {n_per_class} per class asked for; "
                "lower the per-class count"
            )
        chosen.append(rng.choice(members, size=n_per_class, replace=False))
    return np.sort(np.concatenate(chosen))
