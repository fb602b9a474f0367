"""Moved to :mod:`moo_compress.deploy.export`; this path re-exports its public names for old imports."""

from moo_compress.deploy.export import (
    MAGIC,
    ExportResult,
    export_compressed,
    load_compressed,
    pack_compressed,
    unpack_compressed,
)

__all__ = ["MAGIC", "ExportResult", "pack_compressed", "unpack_compressed", "export_compressed", "load_compressed"]
