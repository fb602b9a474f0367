"""Evaluation: fast batched accuracy of a model over uint8 image arrays, on CPU or CUDA; exported ONNX files
in ONNX Runtime (``OnnxModel``); latency of inference calls and of deployed ONNX files."""

from moo_compress.evaluation.evaluator import Evaluator, check_images, evaluate_accuracy
from moo_compress.evaluation.latency import (
    DeployedLatency,
    compare_latency,
    graph_structure,
    hardware,
    measure_deployed,
    measure_latency,
)
from moo_compress.evaluation.onnx_model import OnnxModel, runtime_kernels
from moo_compress.evaluation.runtime import PRECISIONS, autocast, check_precision, resolve_device, resolve_precision

__all__ = [
    "PRECISIONS",
    "DeployedLatency",
    "Evaluator",
    "OnnxModel",
    "autocast",
    "check_images",
    "check_precision",
    "compare_latency",
    "graph_structure",
    "hardware",
    "measure_deployed",
    "measure_latency",
    "resolve_precision",
    "evaluate_accuracy",
    "resolve_device",
    "runtime_kernels",
]
