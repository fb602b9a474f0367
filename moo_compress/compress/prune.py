"""L1-magnitude pruning masks, unstructured (single weights) or structured (whole output filters).

Masks are boolean arrays shaped like the weights, True where a weight is kept. Unstructured pruning
is exact: ``round(sparsity * n)`` weights are removed (ties at the threshold are broken by position),
so the achieved sparsity differs from the target by less than one weight.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from moo_compress.compress.config import PruneConfig

__all__ = ["prune_masks", "magnitude_mask", "filter_mask"]


def magnitude_mask(magnitudes: np.ndarray, n_prune: int) -> np.ndarray:
    """Keep-mask of a 1-D array that removes exactly the ``n_prune`` smallest entries.

    Entries equal to the threshold are pruned in order of position (first ones first), so the result
    is deterministic and exact even when many weights tie (e.g. already-zero weights).
    """
    n = magnitudes.size
    if n_prune <= 0:
        return np.ones(n, dtype=bool)
    if n_prune >= n:
        return np.zeros(n, dtype=bool)
    threshold = np.partition(magnitudes, n_prune - 1)[n_prune - 1]
    keep = magnitudes > threshold
    n_below = n - int(np.count_nonzero(keep)) - int(np.count_nonzero(magnitudes == threshold))
    ties = np.flatnonzero(magnitudes == threshold)
    keep[ties[n_prune - n_below :]] = True  # prune the first (n_prune - n_below) ties, keep the rest
    return keep


def filter_mask(rows: Sequence[np.ndarray], sparsity: float, *, scope: str) -> list[np.ndarray]:
    """Per-layer boolean vectors over output filters (True = kept) for structured pruning.

    Args:
        rows: Each layer's weights reshaped to ``(filters, fan_in)``.
        sparsity: Target fraction of weights removed.
        scope: ``layer``: each layer loses ``round(sparsity * filters)`` filters (at most all but
            one) of smallest L1 norm; ``global``: filters of all layers ranked by mean |w| (so layers
            of different fan-in compare fairly), every layer keeping its strongest filter.
    """
    if scope == "layer":
        out = []
        for r in rows:
            n_filters = r.shape[0]
            n_prune = min(int(round(sparsity * n_filters)), n_filters - 1)
            keep = np.ones(n_filters, dtype=bool)
            if n_prune > 0:
                order = np.argsort(np.abs(r).sum(axis=1), kind="stable")
                keep[order[:n_prune]] = False
            out.append(keep)
        return out
    scores, sizes, owners = [], [], []
    for i, r in enumerate(rows):
        score = np.abs(r).mean(axis=1, dtype=np.float64)
        strongest = int(np.argmax(score))
        candidates = np.delete(np.arange(r.shape[0]), strongest)
        scores.append(score[candidates])
        sizes.append(np.full(candidates.size, r.shape[1], dtype=np.int64))
        owners.append(np.stack([np.full(candidates.size, i), candidates], axis=1))
    score = np.concatenate(scores)
    order = np.argsort(score, kind="stable")
    cumulative = np.cumsum(np.concatenate(sizes)[order])
    target = sparsity * sum(r.size for r in rows)
    removed = np.concatenate([[0], cumulative])
    m = int(np.argmin(np.abs(removed - target)))  # filters to remove; ties go to fewer filters
    pruned = np.concatenate(owners)[order[:m]]
    keep = [np.ones(r.shape[0], dtype=bool) for r in rows]
    for layer, row in pruned:
        keep[layer][row] = False
    return keep


def prune_masks(weights: Sequence[np.ndarray], config: PruneConfig) -> list[np.ndarray]:
    """Keep-masks (shaped like each weight) pruning ``weights`` by L1 magnitude as ``config`` says.

    Args:
        weights: The layers' float weights (first axis = output filters); a global config ranks
            them all together.
        config: Sparsity, scope and structure.
    """
    if config.structured:
        rows = [w.reshape(w.shape[0], -1) for w in weights]
        keeps = filter_mask(rows, config.sparsity, scope=config.scope)
        return [
            np.broadcast_to(k[:, None], r.shape).reshape(w.shape).copy()
            for k, r, w in zip(keeps, rows, weights, strict=True)
        ]
    if config.scope == "layer":
        return [
            magnitude_mask(np.abs(w).ravel(), int(round(config.sparsity * w.size))).reshape(w.shape) for w in weights
        ]
    return _global_masks([np.abs(w).reshape(-1) for w in weights], config.sparsity, [w.shape for w in weights])


def _global_masks(magnitudes: list[np.ndarray], sparsity: float, shapes: list[tuple[int, ...]]) -> list[np.ndarray]:
    # One threshold over all layers, found by an in-place partition of one concatenated copy; the
    # masks then come from per-layer comparisons, so the concatenation is never split or copied again.
    total = sum(m.size for m in magnitudes)
    n_prune = int(round(sparsity * total))
    if n_prune <= 0:
        return [np.ones(shape, dtype=bool) for shape in shapes]
    if n_prune >= total:
        return [np.zeros(shape, dtype=bool) for shape in shapes]
    flat = np.concatenate(magnitudes)
    flat.partition(n_prune - 1)
    threshold = flat[n_prune - 1]
    del flat
    keeps = [m > threshold for m in magnitudes]
    # weights equal to the threshold: prune the first ones (in layer order) until exactly n_prune are gone
    restore = (total - sum(int(np.count_nonzero(k)) for k in keeps)) - n_prune
    for m, keep in zip(reversed(magnitudes), reversed(keeps), strict=True):
        if restore <= 0:
            break
        ties = np.flatnonzero(m == threshold)
        take = ties[max(0, ties.size - restore) :]
        keep[take] = True
        restore -= take.size
    return [k.reshape(shape) for k, shape in zip(keeps, shapes, strict=True)]
