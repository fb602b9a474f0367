"""Deterministic stratified subsets: the same images for every model evaluated (paired comparisons)."""

from __future__ import annotations

import numpy as np

from moo_compress.errors import ConfigError

__all__ = ["stratified_indices", "select_indices", "balanced_order", "split_indices", "TEST_SPLITS"]

#: Names of the parts of a test set that :func:`split_indices` returns.
TEST_SPLITS = ("search", "report", "all")


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


def select_indices(labels: np.ndarray, n_per_class: int | None, seed: int,
                   indices: np.ndarray | None = None) -> np.ndarray:
    """The positions of a test set to use: ``indices`` (checked), a stratified subset, or every image.

    Args:
        labels: Labels of the whole test set.
        n_per_class: Images per class of a :func:`stratified_indices` subset drawn with ``seed``; None
            for every image.
        seed: Seed of the subset.
        indices: Exactly these positions, instead of a subset (``n_per_class`` is then ignored).

    Returns:
        int64 positions.

    Raises:
        ConfigError: if ``indices`` are not positions in ``labels``, or the subset cannot be drawn.
    """
    if indices is not None:
        indices = np.asarray(indices, dtype=np.int64)
        if indices.ndim != 1 or (indices.size and (indices.min() < 0 or indices.max() >= len(labels))):
            raise ConfigError(f"indices must be positions in the {len(labels)} test images")
        return indices
    if n_per_class is None:
        return np.arange(len(labels), dtype=np.int64)
    return stratified_indices(labels, n_per_class, seed=seed).astype(np.int64)


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
    for row, m in zip(table, members, strict=True):
        row[: min(m.size, rounds)] = m[:rounds]
    order = np.argsort(rng.random((rounds, classes.size)), axis=1)  # a class order per round
    flat = table[order, np.arange(rounds)[:, None]].reshape(-1)
    return flat[flat >= 0][:n]


def split_indices(labels: np.ndarray, split: str, *, seed: int = 0, fraction: float = 0.5) -> np.ndarray:
    """The indices of one part of a test set split into a *search* and a *report* part, stratified.

    Each class's members are shuffled with ``seed`` and the first ``round(fraction * size)`` go to the
    search part, the rest to the report part, so both parts keep the class proportions, never share an
    image, and the same labels and seed always give the same parts. Plans are selected on the search
    part and only measured on the report part, so reported numbers are not biased by the selection.

    Args:
        labels: Labels of the whole test set.
        split: ``search``, ``report`` or ``all`` (every index).
        seed: Seed of the split (kept apart from the seeds of subsets drawn inside a part).
        fraction: Share of each class in the search part, in (0, 1).

    Returns:
        The indices of the part, ascending.

    Raises:
        ConfigError: for an unknown part or a fraction outside (0, 1).
    """
    labels = np.asarray(labels)
    if split not in TEST_SPLITS:
        raise ConfigError(f"unknown split {split!r}; choose one of {list(TEST_SPLITS)}")
    if split == "all":
        return np.arange(labels.size, dtype=np.int64)
    if not 0.0 < float(fraction) < 1.0:
        raise ConfigError(f"the search fraction of the split must be in (0, 1), got {fraction!r}")
    rng = np.random.default_rng([seed, 0x5EA4C4])  # a stream of its own: independent of subset seeds
    chosen = []
    for cls in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == cls))
        cut = int(round(float(fraction) * members.size))
        chosen.append(members[:cut] if split == "search" else members[cut:])
    return np.sort(np.concatenate(chosen)).astype(np.int64)
