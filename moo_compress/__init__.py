"""moo_compress: find compression plans for a trained CNN that stay accurate and robust.

The package is layered; imports flow one way:
``models`` / ``data`` / ``compress`` -> ``evaluation`` -> ``search`` -> command-line modules.
"""

__version__ = "0.1.0"

__all__ = ["__version__", "search"]


def __getattr__(name: str) -> object:
    """``moo_compress.search`` on first use (the search package is callable: ``moo_compress.search(model, data)``)."""
    if name == "search":
        import importlib

        return importlib.import_module("moo_compress.search")
    raise AttributeError(f"module 'moo_compress' has no attribute {name!r}")
