"""The multi-objective compression search: spaces, problem, cache, knees, runs.

The Python entry point is :func:`moo_compress.optimize`. Calling the package itself
(``moo_compress.search(model, data, ...)``) still works for a while, with a deprecation warning.

>>> import moo_compress
>>> result = moo_compress.optimize("resnet20", "cifar10", quick=True)    # doctest: +SKIP
>>> from moo_compress.search import SearchSettings, TargetSettings, run_search   # the settings-object form
>>> run = run_search(SearchSettings(TargetSettings("resnet20"), quick=True))      # doctest: +SKIP

Importing it loads no plotting library: figures are rendered when a run folder is written.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from moo_compress.api import Result
from moo_compress.search.api import search
from moo_compress.search.settings import (
    AlgorithmSettings,
    ExecutionSettings,
    FidelitySettings,
    OutputSettings,
    SearchSettings,
    TargetSettings,
)

if TYPE_CHECKING:
    from moo_compress.search.run import SearchResult

__all__ = ["Result", "SearchSettings", "TargetSettings", "AlgorithmSettings", "FidelitySettings", "ExecutionSettings",
           "OutputSettings", "run_search", "search"]


def run_search(settings: SearchSettings, *, algorithm: Any = None, progress: Callable[[Any], None] | None = None,
               render: Callable[[Path], object] | None = None,
               log: Callable[[str], None] | None = None) -> SearchResult:
    """Runs a search from a :class:`SearchSettings` and writes its run folder's tables
    (see :func:`moo_compress.search.run.run_search` for the arguments)."""
    from moo_compress.search.run import run_search as _run

    return _run(settings, algorithm=algorithm, progress=progress, render=render, log=log)


class _CallableModule(types.ModuleType):
    """Lets ``moo_compress.search(...)`` call :func:`search` while ``moo_compress.search`` stays a package."""

    def __call__(self, *args: Any, **kwargs: Any) -> Result:
        return search(*args, **kwargs)  # deprecated: warns and calls moo_compress.optimize


sys.modules[__name__].__class__ = _CallableModule
