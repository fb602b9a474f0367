"""Deterministic stratified subsets: the same images for every model evaluated (paired comparisons)."""

from __future__ import annotations

import numpy as np

from moo_compress.errors import ConfigError

__all__ = ["stratified_indices", "balanced_order"]


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


def balanced_order(labels: np.ndarray, n: int, *, seed: int = 0) -> np.ndarray:
    """``n`` indices drawn evenly from every class, interleaved so that every prefix is class-balanced.

    Each class's members are shuffled with ``seed``; the result takes them in rounds of one image per
    class, each round in its own random class order. Any prefix of ``m`` indices therefore holds
    ``m // classes`` or one more image of every class, and batches cut from it mix the classes. A class
    that runs out of images drops out of the later rounds (imbalanced datasets). The shuffles do not
    depend on ``n``, so for one seed a larger ``n`` extends a smaller one: the number of images drawn
    never changes which images come first.

    Raises:
        ConfigError: if ``n`` is not positive, is smaller than the number of classes (some class would
            be left out), or exceeds the number of images.
    """
    labels = np.asarray(labels)
    classes = np.unique(labels)
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 1:
        raise ConfigError(f"the number of images must be a positive integer, got {n!r}")
    if n < classes.size:
        raise ConfigError(
            f"{n} images cannot represent all {classes.size} classes; ask for at least {classes.size} "
            "(one per class)"
        )
    if n > labels.size:
        raise ConfigError(f"{n} images asked for but the dataset holds {labels.size}; ask for at most {labels.size}")
    rng = np.random.default_rng([seed, 0xCA11B])
    members = [rng.permutation(np.flatnonzero(labels == cls)) for cls in classes]
    sizes = np.array([m.size for m in members])
    rounds = -(-n // classes.size)
    while np.minimum(sizes, rounds).sum() < n:  # some classes ran out: more rounds of the others
        rounds += 1
    table = np.full((classes.size, rounds), -1, dtype=np.int64)
    for row, m in zip(table, members):
        row[: min(m.size, rounds)] = m[:rounds]
    order = np.argsort(rng.random((rounds, classes.size)), axis=1)  # a class order per round
    flat = table[order, np.arange(rounds)[:, None]].reshape(-1)
    return flat[flat >= 0][:n]
