"""moo_compress: find compression plans for a trained CNN that stay accurate and robust.

The package is layered; imports flow one way:
``models`` / ``data`` / ``compress`` -> ``evaluation`` -> ``search`` -> command-line modules.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
