"""A reference no recipe can damage: the space's recovery is checked on the uncompressed model first.

Every plan is compared with a *reference*: the uncompressed model after the same recovery as the plans,
so that a plan's deltas show what its compression does, not what the recovery does. A recovery that
harms the uncompressed model (fine-tuning on labels with too high a learning rate, say) would make every
plan look better than it is against a weakened reference. Before screening,
:func:`guard_reference` measures the uncompressed model with and without the space's recovery on the
search split (the images of the screening rungs and the selection, which the reference is measured on
anyway), and when the recovery costs clean accuracy *or* mean corruption accuracy beyond the noise (the
paired 95% interval of the difference wholly below zero) the run's reference becomes the original model,
and the run says so.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from moo_compress.compress import CompressionPlan
from moo_compress.errors import MooCompressError
from moo_compress.evaluation.stats import paired_difference_interval
from moo_compress.search.claims import LEVEL
from moo_compress.search.context import SearchContext
from moo_compress.search.evaluation_record import EvaluationRecord
from moo_compress.search.problem import PlanEvaluator
from moo_compress.search.progress import Progress
from moo_compress.search.racing import rung_windows
from moo_compress.search.records import Claim

__all__ = ["ReferenceCheck", "guard_reference", "check_recovery", "checked", "measure_windows", "search_windows",
           "compare_with_original"]

logger = logging.getLogger("moo_compress.search")


@dataclass(frozen=True)
class ReferenceCheck:
    """The space's recovery measured on the uncompressed model against the original.

    Attributes:
        recovered: The uncompressed model under the space's recovery (the usual reference).
        clean_delta: Its clean accuracy minus the original's (points, paired 95% interval).
        mca_delta: Its mean corruption accuracy minus the original's (points, paired 95% interval).
        images: Search-split images per (corruption, severity) the comparison used.
        n_clean: Clean images it used.
    """

    recovered: CompressionPlan
    clean_delta: Claim
    mca_delta: Claim
    images: int
    n_clean: int

    @property
    def damaged(self) -> bool:
        """Whether the recovery costs clean accuracy or robustness beyond the noise (interval wholly below 0)."""
        return self.clean_delta.high < 0 or self.mca_delta.high < 0

    @property
    def reference(self) -> CompressionPlan:
        """The reference the run compares against: the original when the recovery damages it."""
        return CompressionPlan() if self.damaged else self.recovered

    def deltas(self) -> str:
        """The two deltas against the original and the images behind them, as a phrase."""
        return (f"clean {_claim(self.clean_delta)}, mean corruption accuracy {_claim(self.mca_delta)} points against "
                f"the original on {self.n_clean:,} clean and {self.images} search-split images per (corruption, "
                "severity)")

    def note(self) -> str:
        """What the check found, in a sentence (``knees.json``'s notes and ``summary.md``)."""
        deltas = self.deltas()
        if self.damaged:
            return (f"the space's recovery damages the uncompressed model ({deltas}), so the reference of this run is "
                    "the original model: every plan's deltas are against it (the plans keep their recovery)")
        return f"the space's recovery leaves the uncompressed model within the noise or better ({deltas})"

    def to_dict(self) -> dict[str, Any]:
        """The check as ``knees.json`` holds it."""
        return {"damaged": self.damaged, "reference": "original" if self.damaged else "recovered",
                "clean_delta": self.clean_delta.to_dict(), "mca_delta": self.mca_delta.to_dict(),
                "images": self.images, "n_clean": self.n_clean}


def _claim(claim: Claim) -> str:
    return f"{claim.estimate:+.1f} [{claim.low:+.1f}, {claim.high:+.1f}]"


def compare_with_original(recovered: EvaluationRecord, original: EvaluationRecord, corruptions: tuple[str, ...],
                          severities: tuple[int, ...]) -> tuple[Claim, Claim]:
    """Paired clean and mean-corruption-accuracy deltas (points) of ``recovered`` against ``original``."""
    a, b = recovered.outcomes(corruptions, severities), original.outcomes(corruptions, severities)
    n = min(len(a.cells), len(b.cells))

    def per_image(cells: np.ndarray) -> np.ndarray:
        return cells[:n].reshape(n, -1).astype(float).mean(axis=1)

    out = []
    for x, y in ((a.clean, b.clean), (per_image(a.cells), per_image(b.cells))):
        delta = paired_difference_interval(np.asarray(x, float), np.asarray(y, float), level=LEVEL)
        out.append(Claim(100 * delta.estimate, 100 * delta.low, 100 * delta.high))
    return out[0], out[1]


def search_windows(ctx: SearchContext, top: int) -> list[tuple[int, int]]:
    """The windows of the first ``top`` search-split images per cell along the screening rungs."""
    return rung_windows([r for r in ctx.ladder if r < top] + [top])


def measure_windows(ctx: SearchContext, plans: list[CompressionPlan], top: int,
                    progress: Progress | None = None) -> list[EvaluationRecord]:
    """Records of ``plans`` on the first ``top`` search-split images per cell, measured window by window along
    the screening rungs (cached, the compressed models kept between windows), so that they pair image by image
    with every other record of the run."""
    records: list[list[EvaluationRecord]] = []
    for start, stop in search_windows(ctx, top):
        evaluator = PlanEvaluator(ctx.window_spec(start, stop), ctx.base_spec.cache_dir or "", ctx.executor,
                                  on_record=None if progress is None else progress.on_record)
        records.append(evaluator(plans))
    return [EvaluationRecord.merge([window[i] for window in records]) for i in range(len(plans))]


def check_recovery(ctx: SearchContext, recovered: CompressionPlan, top: int,
                   progress: Progress | None = None) -> ReferenceCheck:
    """The uncompressed model under ``recovered``'s recovery against the original, on ``top`` images per cell.

    Raises:
        MooCompressError: when either model fails to evaluate.
    """
    return checked(ctx, recovered, measure_windows(ctx, [recovered, CompressionPlan()], top, progress), top)


def checked(ctx: SearchContext, recovered: CompressionPlan, merged: list[EvaluationRecord], top: int) -> ReferenceCheck:
    """The check of ``recovered`` from the merged records of it and of the original (in that order).

    Raises:
        MooCompressError: when either failed.
    """
    for name, record in zip((f"the uncompressed model after recovery {recovered.recovery.level}", "the original model"),
                            merged, strict=True):
        if not record.ok:
            raise MooCompressError(f"{name} failed on the search split: {record.error}")
    spec = ctx.base_spec
    clean, mca = compare_with_original(merged[0], merged[1], spec.corruptions, spec.severities)
    return ReferenceCheck(recovered, clean, mca, images=top, n_clean=merged[0].n_clean)


def guard_reference(ctx: SearchContext,
                    progress: Progress | None = None) -> tuple[SearchContext, ReferenceCheck | None]:
    """The context with the reference the run can trust, and the check behind it (None without recovery).

    The recovered and the original uncompressed model are measured on the windows of the screening rungs
    and the selection (cached; the recovered one's are the reference's own later measurements);
    ``progress`` counts them as the stage "reference check".

    Raises:
        MooCompressError: when either model fails to evaluate.
    """
    recovered = ctx.reference_plan
    if not recovered.recovery.enabled:
        return ctx, None
    top = max(ctx.ladder[-1], ctx.select_images if ctx.settings.fidelity.select_images != 0 else 0)
    if progress is not None:
        progress.start("reference check", 2 * len(search_windows(ctx, top)), [])
    check = check_recovery(ctx, recovered, top, progress)
    (logger.warning if check.damaged else logger.info)(check.note())
    if check.damaged:
        ctx = dataclasses.replace(ctx, reference_plan=check.reference)
    return ctx, check
