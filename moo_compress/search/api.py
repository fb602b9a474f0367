"""The search as one Python call: moved to :func:`moo_compress.optimize` (this module keeps the old name
for a while, with a deprecation warning)."""

from __future__ import annotations

import warnings
from typing import Any

from moo_compress.api import Result, optimize

__all__ = ["Result", "search"]


def search(*args: Any, **kwargs: Any) -> Result:
    """Deprecated: use :func:`moo_compress.optimize` (same arguments)."""
    warnings.warn("moo_compress.search(...) is deprecated and will be removed; call moo_compress.optimize(...) with "
                  "the same arguments", DeprecationWarning, stacklevel=3)
    return optimize(*args, **kwargs)
