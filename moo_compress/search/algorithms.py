"""The search's algorithms: NSGA-II (the default), the grid, and any pymoo multi-objective algorithm.

Names (``--algorithm`` on the command line, ``algorithm.name`` in a space) are in :data:`ALGORITHMS`.
In Python any pymoo algorithm object can be passed (``run_search(settings, algorithm=SMSEMOA(pop_size=8))``):
:func:`prepare_algorithm` adds the integer-gene repair (genes are indices of choices) to it. The surrogate
(:mod:`~moo_compress.search.surrogate`) steers only algorithms whose offspring it can choose from a larger
batch (:func:`surrogate_can_steer`); elsewhere the run says the surrogate is off.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np
from pymoo.core.duplicate import DefaultDuplicateElimination

from moo_compress.errors import ConfigError
from moo_compress.registry import Registry
from moo_compress.search.space import Encoding

__all__ = ["ALGORITHMS", "GridSearch", "create_algorithm", "prepare_algorithm", "surrogate_can_steer",
           "initial_population", "ArchiveDuplicateElimination", "list_algorithms"]

logger = logging.getLogger("moo_compress.search")

#: Algorithm factories by name: ``(encoding, pop_size, seed, n_obj) -> algorithm``.
ALGORITHMS: Registry[Callable[[Encoding, int, int, int], Any]] = Registry("algorithm")


def list_algorithms() -> list[str]:
    """The algorithm names ``--algorithm`` accepts."""
    return ALGORITHMS.names()


def initial_population(encoding: Encoding, pop_size: int, seed: int) -> np.ndarray:
    """The uncompressed genotype (all zeros), the strongest one, each technique alone at its mildest
    setting (e.g. 50% pruning, 16 clusters, 8 bits: the accurate end of the front, which random
    genotypes seldom reach), then random genotypes."""
    rng = np.random.default_rng(seed)
    upper = encoding.upper_bounds
    X = rng.integers(0, upper + 1, size=(pop_size, len(upper)))
    kinds = [v.gene.kind for v in encoding.variables]
    seeds = [np.zeros(len(upper), dtype=int), upper.copy()]
    for kind in dict.fromkeys(kinds):
        mild = np.zeros(len(upper), dtype=int)
        mild[[i for i, k in enumerate(kinds) if k == kind]] = 1
        seeds.append(np.minimum(mild, upper))
    for i, x in enumerate(seeds[:pop_size]):
        X[i] = x
    return X


class ArchiveDuplicateElimination(DefaultDuplicateElimination):
    """pymoo duplicate elimination that also rejects genotypes evaluated in any earlier generation.

    pymoo compares offspring only with the current population; in a discrete space that re-proposes
    plans already evaluated (free from the cache, but a wasted slot of the evaluation budget). The
    screening stage adds each evaluated generation to :attr:`seen`.
    """

    def __init__(self) -> None:
        super().__init__()
        self.seen: set[tuple[int, ...]] = set()

    def _do(self, pop: Any, other: Any, is_duplicate: np.ndarray) -> np.ndarray:
        is_duplicate = super()._do(pop, other, is_duplicate)
        for i, x in enumerate(np.round(self.func(pop)).astype(int)):
            is_duplicate[i] |= tuple(x) in self.seen
        return is_duplicate


def _operators() -> dict[str, Any]:
    """Integer genes as pymoo recommends for discrete variables: real-coded SBX and polynomial mutation with
    a small distribution index (wide steps: neighbouring integers are different plans), rounded."""
    from pymoo.operators.crossover.sbx import SBX
    from pymoo.operators.mutation.pm import PM
    from pymoo.operators.repair.rounding import RoundingRepair

    return {"crossover": SBX(prob=0.9, eta=3.0, vtype=float, repair=RoundingRepair()),
            "mutation": PM(eta=3.0, vtype=float, repair=RoundingRepair()),
            "eliminate_duplicates": ArchiveDuplicateElimination()}


@ALGORITHMS.decorator("nsga2")
def _nsga2(encoding: Encoding, pop_size: int, seed: int, n_obj: int) -> Any:
    from pymoo.algorithms.moo.nsga2 import NSGA2

    return NSGA2(pop_size=pop_size, sampling=initial_population(encoding, pop_size, seed), **_operators())


@ALGORITHMS.decorator("nsga3")
def _nsga3(encoding: Encoding, pop_size: int, seed: int, n_obj: int) -> Any:
    from pymoo.algorithms.moo.nsga3 import NSGA3
    from pymoo.util.ref_dirs import get_reference_directions

    partitions = 1
    while len(get_reference_directions("das-dennis", n_obj, n_partitions=partitions + 1)) <= pop_size:
        partitions += 1
    ref_dirs = get_reference_directions("das-dennis", n_obj, n_partitions=partitions)
    return NSGA3(ref_dirs=ref_dirs, pop_size=pop_size, sampling=initial_population(encoding, pop_size, seed),
                 **_operators())


class GridSearch:
    """Every plan of the space, in :meth:`~moo_compress.search.space.Encoding.grid` order, ``batch_size`` at a
    time (one "generation" per batch). Speaks the part of pymoo's ask/tell interface the search uses.

    Args:
        batch_size: Plans per generation.
        max_evals: Evaluate only the first this many plans.
    """

    def __init__(self, batch_size: int, max_evals: int | None = None) -> None:
        self.batch_size = batch_size
        self.max_evals = max_evals
        self.grid = np.zeros((0, 0), dtype=int)
        self.cursor = 0

    def setup(self, problem: Any, **_: Any) -> GridSearch:
        """Lists the grid of ``problem``'s encoding."""
        self.grid = np.array(list(problem.encoding.grid()))
        if self.max_evals is not None:
            self.grid = self.grid[: self.max_evals]
        self.cursor = 0
        return self

    @property
    def generations(self) -> int:
        """Batches in the grid."""
        return -(-len(self.grid) // self.batch_size)

    def has_next(self) -> bool:
        """Whether plans are left."""
        return self.cursor < len(self.grid)

    def ask(self) -> Any:
        """The next batch as a pymoo population."""
        from pymoo.core.population import Population

        X = self.grid[self.cursor:self.cursor + self.batch_size]
        self.cursor += len(X)
        return Population.new(X=X)

    def tell(self, infills: Any = None, **_: Any) -> None:
        """Nothing to learn: the grid is fixed."""


@ALGORITHMS.decorator("grid")
def _grid(encoding: Encoding, pop_size: int, seed: int, n_obj: int) -> Any:
    return GridSearch(pop_size)


def create_algorithm(name: str, encoding: Encoding, pop_size: int, seed: int, n_obj: int) -> Any:
    """The algorithm registered as ``name``, set up for ``encoding`` and ``n_obj`` objectives.

    Raises:
        UnknownNameError: for an unknown name (the message lists the valid ones).
    """
    return ALGORITHMS.get(name)(encoding, pop_size, seed, n_obj)


def prepare_algorithm(algorithm: Any) -> Any:
    """Adds rounding to integers to a pymoo algorithm's repair (initial sampling and mating), so that any
    multi-objective algorithm proposes valid genotypes.

    Raises:
        ConfigError: for an object that is not a pymoo algorithm (nor a :class:`GridSearch`).
    """
    if isinstance(algorithm, GridSearch):
        return algorithm
    from pymoo.core.algorithm import Algorithm
    from pymoo.core.repair import NoRepair
    from pymoo.operators.repair.rounding import RoundingRepair

    if not isinstance(algorithm, Algorithm):
        raise ConfigError(f"algorithm must be a pymoo algorithm object or one of {', '.join(list_algorithms())}; "
                          f"got {type(algorithm).__name__}")
    for owner in (algorithm, getattr(algorithm, "initialization", None), getattr(algorithm, "mating", None)):
        if owner is not None and isinstance(getattr(owner, "repair", None), NoRepair):
            owner.repair = RoundingRepair()
    return algorithm


def surrogate_can_steer(algorithm: Any) -> bool:
    """Whether the surrogate can choose this algorithm's offspring: genetic algorithms whose survival merges
    whatever offspring are told into the population (NSGA-II, NSGA-III and their subclasses)."""
    from pymoo.algorithms.moo.nsga2 import NSGA2
    from pymoo.algorithms.moo.nsga3 import NSGA3

    return isinstance(algorithm, (NSGA2, NSGA3))
