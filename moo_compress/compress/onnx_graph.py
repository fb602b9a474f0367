"""Moved to :mod:`moo_compress.deploy.graph`; this path re-exports its public names for old imports."""

from moo_compress.deploy.graph import (
    GraphIndex,
    KeptChannels,
    attribute,
    drop_unused_initializers,
    remove_zero_filters,
)

__all__ = ["GraphIndex", "KeptChannels", "remove_zero_filters", "drop_unused_initializers", "attribute"]
