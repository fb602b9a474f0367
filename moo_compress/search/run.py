"""``run_search(settings)``: context -> screening -> selection -> promotion -> report -> held out -> deployment
-> outputs.

It reads like :func:`pymoo.optimize.minimize`: the algorithm is an argument (NSGA-II by default; any name
of :data:`~moo_compress.search.algorithms.ALGORITHMS` or any pymoo multi-objective algorithm object), and
each stage is a function from the earlier stages' results to its own (:mod:`~moo_compress.search.screening`,
:mod:`~moo_compress.search.stages`).

The run is resumable by construction: every evaluation is cached the moment it is known, the algorithm
is seeded, and cached evaluations return identical numbers, so re-running the same command replays the
finished part from the cache and continues where an interrupted run stopped.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from moo_compress.search import outputs
from moo_compress.search.algorithms import create_algorithm, prepare_algorithm
from moo_compress.search.candidate import discard_models
from moo_compress.search.context import (
    UNTIL_BUDGET,
    SearchContext,
    build_spec,
    needs_calibration,
    resolve_context,
    resolve_fidelity,
    space_spec,
)
from moo_compress.search.executors import close_executors
from moo_compress.search.pareto import hypervolume, pareto_mask
from moo_compress.search.progress import Progress, ProgressCallback, callable_logging, format_duration, run_log
from moo_compress.search.promotion import promote_stage
from moo_compress.search.reference import guard_reference
from moo_compress.search.screening import Screening, screen, start_screening
from moo_compress.search.stages import deployment_stage, finish, held_out_stage, report_stage, select_stage

__all__ = ["SearchResult", "run_search", "hypervolume", "pareto_mask", "build_spec", "space_spec", "needs_calibration",
           "resolve_fidelity", "UNTIL_BUDGET"]

logger = logging.getLogger("moo_compress.search")


@dataclass
class SearchResult:
    """What a search produced (also written to ``out_dir``).

    Attributes:
        out_dir: The run folder.
        evaluations: One row per distinct candidate evaluated at screening fidelity.
        pareto: The Pareto set with screening and final metrics.
        recommendations: The knee points and user picks.
        history: One row per generation (evaluations, cache hits, hypervolume, time).
        baseline: Metrics of the uncompressed model (screening and final).
        seconds: Wall time.
    """

    out_dir: Path
    evaluations: pd.DataFrame
    pareto: pd.DataFrame
    recommendations: list[dict[str, Any]]
    history: pd.DataFrame
    baseline: dict[str, Any]
    seconds: float


def _algorithm(ctx: SearchContext, algorithm: Any, screening: Screening) -> Any:
    """The algorithm to run: an object as given (with integer repair), else ``--algorithm``'s or the space's name."""
    if algorithm is None or isinstance(algorithm, str):
        name = algorithm or ctx.settings.algorithm.name or ctx.space.algorithm
        algorithm = create_algorithm(name, ctx.encoding, ctx.pop_size, ctx.settings.algorithm.seed,
                                     len(screening.objectives.names))
    return prepare_algorithm(algorithm)


@contextlib.contextmanager
def _messages(log: Callable[[str], None] | None,
              progress: ProgressCallback | None) -> Iterator[ProgressCallback | None]:
    """``log`` (the older form) receives the messages and the per-plan lines."""
    if log is None:
        yield progress
        return
    with callable_logging(log):
        yield progress or (lambda event: log(event.line()))


def run_search(settings: Any, *, algorithm: Any = None, progress: ProgressCallback | None = None,
               render: Callable[[Path], object] | None = None,
               log: Callable[[str], None] | None = None) -> SearchResult:
    """Runs a compression search and writes its run folder's tables; see the module docstring.

    Args:
        settings: The :class:`~moo_compress.search.settings.SearchSettings`.
        algorithm: A name of :data:`~moo_compress.search.algorithms.ALGORITHMS` or a pymoo algorithm object
            (default: ``settings.algorithm.name``, else the space's, NSGA-II).
        progress: Called with each plan's :class:`~moo_compress.search.progress.ProgressEvent`.
        render: Called with the run folder once its tables are written (e.g.
            :func:`moo_compress.report.render_run`, as the command line passes), to add ``summary.md``
            and the figures.
        log: Called with each message and per-plan line (the older form of ``logging`` and ``progress``).

    Messages go to the ``moo_compress`` logger and to the run folder's ``run.log``.

    Raises:
        MooCompressError: for bad settings, a malformed space, impossible constraints, missing data.
    """
    with _messages(log, progress) as progress, run_log() as journal:
        ctx = resolve_context(settings)
        journal.open(ctx.out_dir)
        tracker = Progress(progress, ctx.started, ctx.executor.workers)
        ctx, check = guard_reference(ctx, tracker)
        screening = start_screening(ctx, tracker, check)
        try:
            screen(ctx, _algorithm(ctx, algorithm, screening), screening, tracker)
            selection = select_stage(ctx, screening, tracker)
            selection, promoted = promote_stage(ctx, screening, selection, tracker)
            reported = report_stage(ctx, screening, selection, tracker)
            held_out_stage(ctx, screening, selection, reported, tracker)
            deployment_stage(ctx, screening, selection, reported)
        finally:
            close_executors()
            discard_models(screening.spec)
        picks, baseline, fidelity = finish(ctx, screening, selection, reported)
        baseline["promotion"] = promoted.to_dict() if promoted is not None else None
        frame = screening.frame
        result = SearchResult(ctx.out_dir, frame.drop(columns=["_F"]),
                              reported.front.table.drop(columns=["_F"], errors="ignore"), picks,
                              pd.DataFrame(screening.history), baseline, tracker.elapsed())
        outputs.write_all(result, settings=ctx.settings, space=ctx.space, spec=screening.spec,
                          final_spec=reported.spec, select_spec=selection.spec, encoding=ctx.encoding,
                          objectives=screening.objectives, fidelity=fidelity,
                          latency=screening.meter.describe() if screening.meter is not None else None)
        if render is not None:
            render(ctx.out_dir)
        logger.info(f"done in {format_duration(tracker.elapsed())}: {len(frame)} plans evaluated, "
                    f"{len(result.pareto)} on the front; results in {ctx.out_dir}/"
                    f"{' (summary.md)' if render is not None else ''}")
    return result
