"""Pareto masks and hypervolumes of minimised objective vectors."""

from __future__ import annotations

import numpy as np

__all__ = ["pareto_mask", "hypervolume"]


def pareto_mask(F: np.ndarray, feasible: np.ndarray | None = None) -> np.ndarray:
    """Boolean mask of the non-dominated (and feasible) rows of ``F`` (minimised)."""
    from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting

    F = np.asarray(F, float)
    mask = np.zeros(len(F), dtype=bool)
    candidates = np.flatnonzero(feasible if feasible is not None else np.ones(len(F), bool))
    if len(candidates):
        front = NonDominatedSorting().do(F[candidates], only_non_dominated_front=True)
        mask[candidates[front]] = True
    return mask


def hypervolume(F: np.ndarray, reference: np.ndarray) -> float:
    """Hypervolume dominated by the rows of ``F`` (minimised) up to ``reference``; 0 for an empty set."""
    from pymoo.indicators.hv import HV

    F = np.asarray(F, float)
    if F.size == 0:
        return 0.0
    inside = F[np.all(F < reference, axis=1)]
    return float(HV(ref_point=reference)(inside)) if len(inside) else 0.0
