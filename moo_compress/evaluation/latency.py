"""Moved to :mod:`moo_compress.deploy.latency`; this path re-exports its public names for old imports."""

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

__all__ = ["measure_latency", "compare_latency", "time_calls", "DeployedLatency", "measure_paired", "measure_deployed",
           "hardware", "onnx_runtime_name", "graph_structure"]
