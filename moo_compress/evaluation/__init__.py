"""Evaluation: fast batched accuracy of a model over uint8 image arrays, on CPU or CUDA.

Running exported ONNX files (``OnnxModel``) and timing inference (``measure_latency``,
``measure_deployed``...) live in :mod:`moo_compress.deploy`; those names are still importable from here,
loaded on first use, so that ``evaluation`` itself never imports ``deploy``.
"""

from moo_compress.evaluation.evaluator import Evaluator, check_images, evaluate_accuracy
from moo_compress.evaluation.runtime import PRECISIONS, autocast, check_precision, resolve_device, resolve_precision
from moo_compress.moved import lazy_names

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

# Names that moved to moo_compress.deploy, loaded on first use (deploy imports evaluation, not the reverse).
_DEPLOYED = {
    "DeployedLatency": "moo_compress.deploy.latency",
    "compare_latency": "moo_compress.deploy.latency",
    "graph_structure": "moo_compress.deploy.latency",
    "hardware": "moo_compress.deploy.latency",
    "measure_deployed": "moo_compress.deploy.latency",
    "measure_latency": "moo_compress.deploy.latency",
    "OnnxModel": "moo_compress.deploy.onnx_model",
    "runtime_kernels": "moo_compress.deploy.onnx_model",
}

__getattr__, __dir__ = lazy_names(__name__, _DEPLOYED, globals())
