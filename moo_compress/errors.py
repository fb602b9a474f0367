"""Every error the package raises on purpose, each a subclass of :class:`MooCompressError`.

Command-line entry points catch :class:`MooCompressError` and print its message as one line
(exit status 2); anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

__all__ = [
    "MooCompressError",
    "ConfigError",
    "UnknownNameError",
    "DataNotFoundError",
    "DataFormatError",
    "CheckpointError",
    "WeightsNotFoundError",
]


class MooCompressError(Exception):
    """Base class of the errors a user can fix (bad input, missing files)."""


class ConfigError(MooCompressError, ValueError):
    """An invalid setting: the message names the setting and proposes a fix."""


class UnknownNameError(ConfigError, KeyError):
    """A name that is not in a registry; the message lists close matches and valid names."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class DataNotFoundError(MooCompressError, FileNotFoundError):
    """A dataset that could not be found; the message says where it looked and how to get it."""


class DataFormatError(MooCompressError, ValueError):
    """Data that exists but has the wrong shape, dtype or layout."""


class CheckpointError(MooCompressError, ValueError):
    """A checkpoint that cannot be read or does not fit the architecture."""


class WeightsNotFoundError(MooCompressError, FileNotFoundError):
    """No weights were found for an architecture; the message lists every way to get them."""
