"""Deployment: compressed models as files, and how fast the files run.

>>> from moo_compress.deploy import export_compressed, export_onnx, OnnxModel, measure_deployed
>>> export_compressed(small, "vgg19.mcpk", arch="vgg19").bytes          # bit-packed codes, masks, codebooks
>>> export_onnx(small, None, "vgg19.onnx", mean=pre.mean, std=pre.std, calibration=calib)
>>> OnnxModel("vgg19.onnx").accuracy(images, labels)                   # in ONNX Runtime on the CPU
>>> measure_deployed("vgg19.onnx", "reference.onnx").speedup

Modules: ``export`` (packed files and loading them back), ``onnx_export`` (ONNX files for ONNX Runtime:
float weights, or int8 QDQ for plans that quantize activations), ``graph`` (editing an exported graph:
removing all-zero filters), ``qdq`` (QuantizeLinear/DequantizeLinear nodes), ``onnx_model`` (running an
exported file), ``latency`` (timing calls and deployed files).

``deploy`` sits beside :mod:`moo_compress.evaluation`: it uses ``models``, ``data``, ``compress`` and
``evaluation``, and none of them imports it. ``graph`` and ``qdq`` import ``onnx`` and are loaded only
when a file is exported, so the package imports without the optional deploy dependencies.
"""

from moo_compress.deploy.export import (
    ExportResult,
    export_compressed,
    load_compressed,
    pack_compressed,
    unpack_compressed,
)
from moo_compress.deploy.latency import (
    DeployedLatency,
    compare_latency,
    graph_structure,
    hardware,
    measure_deployed,
    measure_latency,
    measure_paired,
    onnx_runtime_name,
    time_calls,
)
from moo_compress.deploy.onnx_export import OnnxExport, export_onnx
from moo_compress.deploy.onnx_model import OnnxModel, runtime_kernels

__all__ = [
    "DeployedLatency",
    "ExportResult",
    "OnnxExport",
    "OnnxModel",
    "compare_latency",
    "export_compressed",
    "export_onnx",
    "graph_structure",
    "hardware",
    "load_compressed",
    "measure_deployed",
    "measure_latency",
    "measure_paired",
    "onnx_runtime_name",
    "pack_compressed",
    "runtime_kernels",
    "time_calls",
    "unpack_compressed",
]
