"""Evaluation: fast batched accuracy of a model over uint8 image arrays, on CPU or CUDA."""

from moo_compress.evaluation.evaluator import Evaluator, check_images, evaluate_accuracy
from moo_compress.evaluation.runtime import PRECISIONS, autocast, check_precision, resolve_device, resolve_precision

__all__ = [
    "PRECISIONS",
    "Evaluator",
    "autocast",
    "check_images",
    "check_precision",
    "resolve_precision",
    "evaluate_accuracy",
    "resolve_device",
]
