"""The pymoo Problem of a compression search, and the cached evaluation of plans behind it.

The Problem holds names and bounds only (an :class:`~moo_compress.search.space.Encoding` and
the :class:`~moo_compress.search.objectives.Objectives`), never a loaded model, dataset or evaluator,
because pymoo deep-copies problems and algorithms; the evaluator holds an
:class:`~moo_compress.search.candidate.EvaluationSpec` (names, paths, hashes) and an executor description.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from pymoo.core.problem import Problem

from moo_compress.compress import CompressionPlan
from moo_compress.errors import MooCompressError
from moo_compress.search.cache import EvaluationCache
from moo_compress.search.candidate import EvaluationSpec
from moo_compress.search.evaluation_record import EvaluationRecord
from moo_compress.search.executors import ExecutorConfig, run_tasks
from moo_compress.search.objectives import Objectives
from moo_compress.search.space import Encoding

__all__ = ["PlanEvaluator", "CompressionProblem"]


@dataclass(frozen=True)
class PlanEvaluator:
    """Evaluates plans through the cache: hits are read, misses run on the executor and are stored.

    Attributes:
        spec: The evaluation spec (resolved: data fingerprints filled in).
        cache_dir: Cache root.
        executor: Where misses run.
        on_record: Called with every record as it arrives (hits first, then computed ones in order), e.g.
            to show progress.
    """

    spec: EvaluationSpec
    cache_dir: str
    executor: ExecutorConfig = ExecutorConfig()
    on_record: Callable[[EvaluationRecord], None] | None = None

    def __call__(self, plans: Sequence[CompressionPlan]) -> list[EvaluationRecord]:
        """Records of ``plans`` (in order); each gets ``cache_hit`` set. Repeated plans are evaluated once.

        If a worker dies (killed, out of memory), the results it and the others already stored are read
        back from the cache and the missing plans are submitted once more; a plan whose second attempt
        also loses its worker is recorded as failed (not cached, so a later run retries it).
        """
        cache = EvaluationCache(self.cache_dir)
        context = self.spec.context_key()
        records: dict[str, EvaluationRecord] = {}
        pending: dict[str, CompressionPlan] = {}
        for plan in plans:
            key = plan.key()
            if key in records or key in pending:
                continue
            hit = cache.get(context, key)
            if hit is not None:
                records[key] = EvaluationRecord.from_dict({**hit, "cache_hit": True})
                if self.on_record is not None:
                    self.on_record(records[key])
            else:
                pending[key] = plan
        error: Exception | None = None
        for _attempt in range(2):
            if not pending:
                break
            try:
                for record in run_tasks(self.executor, self.spec, [p.to_dict() for p in pending.values()]):
                    typed = EvaluationRecord.from_dict({**record, "cache_hit": False})
                    records[typed.plan_key] = typed
                    pending.pop(typed.plan_key, None)
                    if self.on_record is not None:
                        self.on_record(typed)
            except MooCompressError:
                raise
            except Exception as exc:  # noqa: BLE001 - a lost worker (loky TerminatedWorkerError, dask KilledWorker)
                error = exc
                warnings.warn(f"an evaluation worker was lost ({type(exc).__name__}: {str(exc)[:200]}); "
                              f"re-submitting {len(pending)} unfinished plan(s)", RuntimeWarning, stacklevel=2)
                for key in list(pending):
                    stored = cache.get(context, key)
                    if stored is not None:
                        records[key] = EvaluationRecord.from_dict({**stored, "cache_hit": False})
                        del pending[key]
        for key, plan in pending.items():
            records[key] = EvaluationRecord.failed(plan, f"worker lost twice: {type(error).__name__}: {error}")
        return [records[p.key()] for p in plans]


class CompressionProblem(Problem):
    """Three objectives (clean accuracy, robustness, log compression ratio), or four with latency; all minimised.

    The problem holds the decision variables and objectives only (names and bounds): plans are measured
    by the screening stage (:func:`~moo_compress.search.screening.screen`), which gives the algorithm
    their objective vectors through pymoo's ask/tell interface.

    Args:
        encoding: Decision variables and their decoding to plans.
        objectives: How metrics become ``F`` and ``G``.
    """

    def __init__(self, encoding: Encoding, objectives: Objectives) -> None:
        self.encoding = encoding
        self.objectives = objectives
        upper = encoding.upper_bounds
        super().__init__(n_var=len(upper), n_obj=len(objectives.names), n_ieq_constr=objectives.n_constraints,
                         xl=np.zeros(len(upper), dtype=int), xu=upper, vtype=int)

    def _evaluate(self, X: np.ndarray, out: dict[str, Any], *args: Any, **kwargs: Any) -> None:
        raise MooCompressError("a CompressionProblem is evaluated by the search's screening stage "
                               "(moo_compress.search.screening.screen), not by pymoo's minimize")
