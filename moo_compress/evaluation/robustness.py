"""Accuracy of a model under every (corruption, severity) of a :class:`~moo_compress.data.cifar_c.CorruptedSet`.

The same CorruptedSet (same images, same fingerprint) is used for every candidate model, so the
accuracies of two models are paired comparisons on identical images.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import torch
from torch import nn

from moo_compress.data.cifar_c import CorruptedSet
from moo_compress.evaluation.evaluator import Evaluator
from moo_compress.evaluation.metrics import to_dict, to_frame

__all__ = ["evaluate_robustness", "robustness_accuracy", "to_dict", "to_frame"]


def evaluate_robustness(evaluator: Evaluator, corrupted: CorruptedSet, *, progress: bool = False) -> pd.DataFrame:
    """Top-1 accuracy of ``evaluator``'s model on every (corruption, severity) of ``corrupted``.

    Args:
        evaluator: The model's :class:`~moo_compress.evaluation.Evaluator`.
        corrupted: The corrupted images (from :func:`~moo_compress.data.cifar_c.load_corrupted`).
        progress: Show a progress bar over the (corruption, severity) pairs.

    Returns:
        A tidy DataFrame with columns ``corruption``, ``severity``, ``accuracy``, ``error`` (fractions)
        and ``family``, one row per pair in reference order; :func:`~moo_compress.evaluation.metrics.to_dict`
        turns it into ``{(corruption, severity): accuracy}``. Every metric of
        :mod:`moo_compress.evaluation.metrics` accepts it directly.
    """
    from tqdm import tqdm

    accuracies = {}
    for corruption, severity, images in tqdm(corrupted, total=len(corrupted.keys()), desc="robustness",
                                             disable=not progress):
        accuracies[(corruption, severity)] = evaluator.accuracy(images, corrupted.labels)
    return to_frame(accuracies, value="accuracy")


def robustness_accuracy(
    model: nn.Module,
    corrupted: CorruptedSet,
    *,
    mean: Sequence[float],
    std: Sequence[float],
    device: str | torch.device = "cpu",
    precision: str = "fp32",
    batch_size: int | None = None,
) -> pd.DataFrame:
    """:func:`evaluate_robustness` for a bare model (builds the :class:`Evaluator`)."""
    evaluator = Evaluator(model, mean=mean, std=std, device=device, precision=precision, batch_size=batch_size)
    return evaluate_robustness(evaluator, corrupted)
