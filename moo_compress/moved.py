"""Names a package still offers after they moved to another module, imported from there on first use."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_names"]


def lazy_names(package: str, moved: Mapping[str, str],
               namespace: Mapping[str, Any]) -> tuple[Callable[[str], object], Callable[[], list[str]]]:
    """A module's ``__getattr__`` and ``__dir__`` that serve ``moved`` (name -> the module it lives in now),
    so that ``package`` keeps offering those names without importing their modules until one is used.

    Example:
        ``__getattr__, __dir__ = lazy_names(__name__, {"export_onnx": "moo_compress.deploy.onnx_export"}, globals())``
    """

    def __getattr__(name: str) -> object:
        module = moved.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(module), name)

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(moved))

    return __getattr__, __dir__
