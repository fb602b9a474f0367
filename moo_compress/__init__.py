"""moo_compress: find compression plans for a trained CNN that stay accurate and robust.

The package is layered; imports flow one way:
``models`` / ``data`` / ``compress`` -> ``evaluation`` -> ``search`` -> command-line modules.
"""

import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # type checkers see the function itself; at run time it is imported on first use
    from moo_compress.api import optimize

__version__ = "0.1.0"

__all__ = ["__version__", "optimize", "search"]

# A library is silent until its user attaches a handler (the command line does; see moo_compress.search.progress).
logging.getLogger("moo_compress").addHandler(logging.NullHandler())


def __getattr__(name: str) -> object:
    """``moo_compress.optimize`` (:func:`moo_compress.api.optimize`) and ``moo_compress.search`` on first use
    (calling the search package is deprecated: use ``optimize``)."""
    if name == "optimize":
        from moo_compress.api import optimize

        return optimize
    if name == "search":
        import importlib

        return importlib.import_module("moo_compress.search")
    raise AttributeError(f"module 'moo_compress' has no attribute {name!r}")
