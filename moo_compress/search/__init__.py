"""The multi-objective compression search: spaces, problem, cache, knees, runs.

>>> from moo_compress.search import SearchSettings, run_search
>>> result = run_search(SearchSettings(arch="resnet20", quick=True))
"""

from moo_compress.search.settings import SearchSettings

__all__ = ["SearchSettings", "run_search"]


def run_search(settings: SearchSettings, **kwargs: object) -> object:
    """Runs a search (see :func:`moo_compress.search.run.run_search`)."""
    from moo_compress.search.run import run_search as _run

    return _run(settings, **kwargs)
