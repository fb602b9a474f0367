"""Held-out robustness: the recommended plans (or the whole front) and the reference measured on
corruptions the search never saw (:func:`held_out_corruptions`), on the same report images; a plan
whose robustness rank among them reverses there beyond its intervals is flagged."""

from __future__ import annotations

import dataclasses
import logging
import math
from typing import Any

import numpy as np
import pandas as pd

from moo_compress.compress import CompressionPlan
from moo_compress.errors import MooCompressError
from moo_compress.evaluation.stats import paired_difference_interval
from moo_compress.search.candidate import EvaluationSpec, load_resources
from moo_compress.search.claims import LEVEL, Outcomes
from moo_compress.search.objectives import Objectives
from moo_compress.search.problem import PlanEvaluator

__all__ = ["held_out", "held_out_corruptions", "rank_reversals", "HELD_OUT"]

logger = logging.getLogger("moo_compress.search")

#: Which reported plans are measured on the held-out corruptions (``--held-out``).
HELD_OUT = ("recommended", "front", "off")



def held_out_corruptions(searched: tuple[str, ...], image_size: tuple[int, int]) -> dict[str, tuple[str, ...]]:
    """The corruptions a search never saw, by suite: ``extra``, the reference recipe's four validation
    corruptions the space does not optimise (none when it optimises all 19), and ``bar``, the ten of
    CIFAR-10-C-bar (Mintun et al., 2021), perceptually unlike the benchmark's, for 32-pixel inputs."""
    from moo_compress.data.corruptions import EXTRA_CORRUPTIONS
    from moo_compress.data.corruptions_bar import BAR_CORRUPTIONS

    suites = {"extra": tuple(c for c in EXTRA_CORRUPTIONS if c not in searched)}
    if tuple(image_size) == (32, 32):
        suites["bar"] = tuple(BAR_CORRUPTIONS)
    return {name: names for name, names in suites.items() if names}



def _mca(out: Outcomes) -> np.ndarray:
    """Per-image accuracy over every (corruption, severity) cell."""
    return out.cells.reshape(len(out.cells), -1).astype(float).mean(axis=1)



def rank_reversals(outcomes: dict[Any, tuple[np.ndarray, np.ndarray]], *, level: float = LEVEL) -> dict[Any, list[Any]]:
    """Plans whose robustness ranking reverses on held-out corruptions beyond the intervals.

    Args:
        outcomes: Per plan, its per-image mean accuracy over the searched cells and over the held-out
            cells (every plan on the same images, in the same order).
        level: Confidence level of the paired intervals.

    Returns:
        For each plan with a reversal, the plans it is confidently more robust than on the searched
        corruptions (paired interval of the difference above zero) but confidently less robust than on
        the held-out ones (interval below zero). A difference within its noise is a tie, never a reversal.
    """
    out: dict[Any, list[Any]] = {}
    for i, (searched_i, held_i) in outcomes.items():
        against = [j for j, (searched_j, held_j) in outcomes.items() if j != i
                   and paired_difference_interval(searched_i, searched_j, level=level).low > 0
                   and paired_difference_interval(held_i, held_j, level=level).high < 0]
        if against:
            out[i] = against
    return out



def held_out(front: pd.DataFrame, rows: list[int], evaluator: PlanEvaluator, spec: EvaluationSpec,
             reference_plan: CompressionPlan, objectives: Objectives) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Measures ``front`` rows ``rows`` and the reference on the held-out corruptions.

    ``evaluator`` carries the report spec (its records, cache hits by now, give the searched robustness);
    ``spec`` the images of the held-out measurement (the report split at its own images per cell; its
    corruptions are replaced by the held-out ones, and clean accuracy is taken on the same images).
    Adds ``heldout/mean_corruption_accuracy``, per suite ``heldout/<suite>_mca`` (percent),
    ``heldout/mca_delta`` with ``_low`` / ``_high`` (points, paired against the reference) and
    ``heldout/rank_reversal``: the measured plans this plan is confidently more robust than on the searched
    corruptions (paired 95% interval of the difference above zero) but confidently less robust than on
    the held-out ones (interval below zero). Rows not measured hold NaN. Returns the front and a summary
    (corruptions by suite, images, the reference's held-out accuracy; ``suites`` empty when nothing is
    held out).
    """
    size = tuple(load_resources(evaluator.spec).clean.images.shape[1:3])
    suites = held_out_corruptions(objectives.corruptions, size)
    names = tuple(c for suite in suites.values() for c in suite)
    front = front.copy()
    for column in ("heldout/mean_corruption_accuracy", "heldout/mca_delta", "heldout/mca_delta_low",
                   "heldout/mca_delta_high", *(f"heldout/{s}_mca" for s in suites)):
        front[column] = math.nan
    front["heldout/rank_reversal"] = pd.Series([None] * len(front), index=front.index, dtype=object)
    info: dict[str, Any] = {"suites": {k: list(v) for k, v in suites.items()}, "rows": list(rows)}
    if not names or not rows:
        logger.info("held out: nothing is held out (the space optimises every corruption of the reference recipe)"
            if not names else "held out: no plan to measure")
        return front, info
    spec = dataclasses.replace(spec, corruptions=names, clean_whole_split=False, clean_fingerprint="",
                               corrupted_fingerprint="", keep_models=evaluator.spec.keep_models).resolved()
    plans = [reference_plan] + [CompressionPlan.from_dict(front["plan"].iloc[i]) for i in rows]
    records = dataclasses.replace(evaluator, spec=spec)(plans)
    searched = dataclasses.replace(evaluator, on_record=None)(plans)  # the report-split records: cache hits
    if not records[0].ok:
        raise MooCompressError(f"the reference failed on the held-out corruptions: {records[0].error}")
    sev = objectives.severities
    ref_out = records[0].outcomes(names, sev)
    ref_mca = _mca(ref_out)
    measured: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    for i, record, report_record in zip(rows, records[1:], searched[1:], strict=True):
        if not (record.ok and report_record.ok):
            continue
        out = record.outcomes(names, sev)
        front.loc[front.index[i], "heldout/mean_corruption_accuracy"] = 100 * float(out.cells.mean())
        for suite, members in suites.items():
            cells = out.cells[:, [names.index(c) for c in members]]
            front.loc[front.index[i], f"heldout/{suite}_mca"] = 100 * float(cells.mean())
        delta = paired_difference_interval(_mca(out), ref_mca, level=LEVEL)
        front.loc[front.index[i], ["heldout/mca_delta", "heldout/mca_delta_low", "heldout/mca_delta_high"]] = \
            [100 * delta.estimate, 100 * delta.low, 100 * delta.high]
        measured[i] = (_mca(report_record.outcomes(objectives.corruptions, sev)), _mca(out))
    flags = rank_reversals({i: pair for i, pair in measured.items()})
    for i, against in flags.items():
        front.at[front.index[i], "heldout/rank_reversal"] = "; ".join(str(front["label"].iloc[j]) for j in against)
    reversals = len(flags)
    info.update({"reference_mca": 100 * float(ref_out.cells.mean()), "n_corrupted": int(len(ref_out.cells)),
                 "split": spec.split,
                 "reference_suites": {s: 100 * float(ref_out.cells[:, [names.index(c) for c in m]].mean())
                                      for s, m in suites.items()}})
    logger.info(f"held out: {len(measured)} plan(s) and the reference measured on {len(names)} corruption(s) the "
        f"search never saw ({', '.join(f'{k}: {len(v)}' for k, v in suites.items())}), {info['n_corrupted']} "
        f"{spec.split}-split images per (corruption, severity); reference {info['reference_mca']:.2f}%; "
        f"{reversals} plan(s) whose robustness rank reverses there beyond its intervals (flagged)")
    return front, info
