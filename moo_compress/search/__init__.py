"""The multi-objective compression search: spaces, problem, cache, knees, runs.

The package is callable: ``moo_compress.search(model, data, ...)`` runs a search and returns a
:class:`~moo_compress.search.api.Result` (see :func:`moo_compress.search.api.search`).

>>> import moo_compress
>>> result = moo_compress.search("resnet20", "cifar10", quick=True)      # doctest: +SKIP
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

from moo_compress.search.api import Result, search
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


def run_search(settings: SearchSettings, *, log: Callable[[str], None] | None = None,
               render: Callable[[Path], object] | None = None) -> SearchResult:
    """Runs a search from a :class:`SearchSettings` and writes its run folder's tables; ``render``
    (e.g. :func:`moo_compress.report.render_run`) adds the summary and figures
    (see :func:`moo_compress.search.run.run_search`)."""
    from moo_compress.search.run import run_search as _run

    return _run(settings, render=render) if log is None else _run(settings, log=log, render=render)


class _CallableModule(types.ModuleType):
    """Lets ``moo_compress.search(...)`` call :func:`search` while ``moo_compress.search`` stays a package."""

    def __call__(self, *args: Any, **kwargs: Any) -> Result:
        return search(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
