"""Moved to :mod:`moo_compress.deploy.onnx_model`; this path re-exports its public names for old imports."""

from moo_compress.deploy.onnx_model import OnnxModel, runtime_kernels

__all__ = ["OnnxModel", "runtime_kernels"]
