"""Paired claims about a compressed model, from the per-image outcomes kept in evaluation records.

Every evaluation record holds, for each image it was scored on, whether the prediction was right
(``clean_correct``, ``corruption_correct``). A candidate and its reference evaluated on the same images
are therefore *paired*, and the claims here are paired intervals over images (:mod:`moo_compress.evaluation.stats`):
the clean-accuracy delta, the mean-corruption-accuracy delta, mCE and relative mCE against the
reference, and the worst-hit class and corruption. They cover the sampling of test images only: not
the calibration images, the seed of the search, or another test distribution.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from moo_compress.errors import ConfigError
from moo_compress.evaluation.stats import Interval, paired_difference_interval, ratio_index_interval

__all__ = ["Outcomes", "plan_claims", "tied", "LEVEL", "ROBUSTNESS_HIGHER_IS_BETTER"]

#: Confidence level of every interval the search reports.
LEVEL = 0.95
#: Whether a higher value of each robustness metric is better.
ROBUSTNESS_HIGHER_IS_BETTER = {"mean_corruption_accuracy": True, "mce": False, "relative_mce": False}


@dataclass(frozen=True, eq=False)
class Outcomes:
    """Per-image outcomes of one evaluation.

    Attributes:
        clean: ``(n_clean,)`` bool, right on each clean image.
        cells: ``(n, corruptions, severities)`` bool, right on each corrupted image.
        corruptions: Corruption names (axis 1).
        severities: Severities (axis 2).
    """

    clean: np.ndarray
    cells: np.ndarray
    corruptions: tuple[str, ...]
    severities: tuple[int, ...]


def _points(interval: Interval) -> Interval:
    return dataclasses.replace(interval, estimate=100 * interval.estimate, low=100 * interval.low,
                               high=100 * interval.high)


def _relative_terms(out: Outcomes) -> np.ndarray:
    """Per image and corruption: errors summed over severities minus severities x the clean error rate."""
    clean_error = 1.0 - float(np.mean(out.clean))
    return (~out.cells).sum(axis=2) - len(out.severities) * clean_error


def plan_claims(candidate: Outcomes, reference: Outcomes, labels: np.ndarray, *,
                level: float = LEVEL) -> dict[str, Any]:
    """Paired claims of a candidate against its reference on the same images.

    Args:
        candidate: The candidate's outcomes.
        reference: The reference's outcomes on the same images.
        labels: Labels of the clean images (for the per-class deltas).
        level: Confidence level.

    Returns:
        ``clean_delta``, ``mca_delta`` (points), ``mce``, ``relative_mce`` (:class:`Interval`;
        relative mCE is undefined, NaN, when the reference loses no accuracy under some corruption),
        ``worst_class`` / ``worst_class_delta`` (the class whose clean accuracy drops most, with its
        interval), ``worst_corruption`` / ``worst_corruption_delta`` (the corruption whose accuracy,
        averaged over severities, drops most), ``changed`` (clean predictions whose correctness
        differs) and ``n_clean``, ``n_corrupted`` (images).
    """
    if candidate.clean.shape != reference.clean.shape or candidate.cells.shape != reference.cells.shape:
        raise ConfigError("candidate and reference were not evaluated on the same images")
    labels = np.asarray(labels)
    clean = _points(paired_difference_interval(candidate.clean, reference.clean, level=level))
    n, c, s = candidate.cells.shape
    mca = _points(paired_difference_interval(candidate.cells.reshape(n, c * s), reference.cells.reshape(n, c * s),
                                             level=level))
    mce = ratio_index_interval((~candidate.cells).sum(axis=2).astype(float),
                               (~reference.cells).sum(axis=2).astype(float), level=level)
    rel = ratio_index_interval(_relative_terms(candidate), _relative_terms(reference), level=level)
    classes = np.unique(labels)
    per_class = [float(np.mean(candidate.clean[labels == k]) - np.mean(reference.clean[labels == k]))
                 for k in classes]
    worst_k = int(np.argmin(per_class))
    mask = labels == classes[worst_k]
    per_corruption = candidate.cells.mean(axis=(0, 2)) - reference.cells.mean(axis=(0, 2))
    worst_c = int(np.argmin(per_corruption))
    return {
        "clean_delta": clean,
        "mca_delta": mca,
        "mce": mce,
        "relative_mce": rel,
        "worst_class": int(classes[worst_k]),
        "worst_class_delta": _points(paired_difference_interval(candidate.clean[mask], reference.clean[mask],
                                                                level=level)),
        "worst_corruption": candidate.corruptions[worst_c],
        "worst_corruption_delta": _points(paired_difference_interval(candidate.cells[:, worst_c],
                                                                     reference.cells[:, worst_c], level=level)),
        "changed": int(np.sum(candidate.clean != reference.clean)),
        "n_clean": int(candidate.clean.size),
        "n_corrupted": int(n),
    }


def tied(a: Outcomes, b: Outcomes, *, level: float = LEVEL) -> bool:
    """Whether two plans are statistically tied: the paired intervals of their differences in clean
    accuracy and in mean corruption accuracy, on the same images, both contain zero."""
    n, c, s = a.cells.shape
    clean = paired_difference_interval(a.clean, b.clean, level=level)
    rob = paired_difference_interval(a.cells.reshape(n, c * s), b.cells.reshape(n, c * s), level=level)
    return clean.contains(0.0) and rob.contains(0.0)


def half_widths(claims: dict[str, Any], robustness: str) -> tuple[float, float]:
    """Half-widths (points) of the clean-delta and robustness intervals of :func:`plan_claims`."""
    rob = claims["mca_delta" if robustness == "mean_corruption_accuracy" else robustness]
    widths = []
    for interval in (claims["clean_delta"], rob):
        width = (interval.high - interval.low) / 2
        widths.append(width if math.isfinite(width) else 0.0)
    return widths[0], widths[1]
