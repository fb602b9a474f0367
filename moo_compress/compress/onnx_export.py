"""Moved to :mod:`moo_compress.deploy.onnx_export`; this path re-exports its public names for old imports."""

from moo_compress.deploy.onnx_export import (
    INPUT_NAME,
    METADATA_PREFIX,
    OUTPUT_NAME,
    OnnxExport,
    export_onnx,
)

__all__ = ["OnnxExport", "export_onnx", "INPUT_NAME", "OUTPUT_NAME", "METADATA_PREFIX"]
