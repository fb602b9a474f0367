"""Per-(corruption, severity) accuracy through the Evaluator, on tiny data and on the real test set."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from moo_compress.data import ArrayDataset
from moo_compress.data.cifar_c import load_corrupted
from moo_compress.evaluation import Evaluator, metrics
from moo_compress.evaluation.robustness import evaluate_robustness, robustness_accuracy


class MeanColour(nn.Module):
    """Classifies by the brightest mean channel: exact on clean colour patches, fooled by strong corruptions."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3))


def colour_patches(per_class: int = 8) -> ArrayDataset:
    rng = np.random.default_rng(0)
    images, labels = [], []
    for label in range(3):
        for _ in range(per_class):
            image = np.full((32, 32, 3), 90, np.int16)
            image[..., label] += 50
            images.append(np.clip(image + rng.integers(-10, 10, image.shape), 0, 255).astype(np.uint8))
            labels.append(label)
    return ArrayDataset(np.stack(images), np.array(labels), ("r", "g", "b"), "cifar10", "test", "memory", "patches")


def test_evaluate_robustness_table(tmp_path: Path) -> None:
    clean = colour_patches()
    corrupted = load_corrupted(clean, corruptions=["contrast", "gaussian_noise"], severities=[1, 5], n_per_class=4,
                               cache_dir=tmp_path)
    evaluator = Evaluator(MeanColour(), mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
    table = evaluate_robustness(evaluator, corrupted)
    assert list(table.columns) == ["corruption", "severity", "accuracy", "error", "family"]
    assert list(zip(table["corruption"], table["severity"], strict=True)) == corrupted.keys()
    for row in table.itertuples():
        expected = evaluator.accuracy(corrupted.images(row.corruption, row.severity), corrupted.labels)
        assert row.accuracy == pytest.approx(expected) and row.error == pytest.approx(1 - expected)
    assert table["accuracy"].between(0, 1).all()
    as_dict = metrics.to_dict(table)
    assert set(as_dict) == set(corrupted.keys())
    assert metrics.mean_corruption_accuracy(table, corruptions=["contrast", "gaussian_noise"], severities=[1, 5]) == (
        pytest.approx(table["accuracy"].mean()))
    again = robustness_accuracy(MeanColour(), corrupted, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
    assert again.equals(table)  # same images, same model: same numbers


@pytest.mark.shared_data
@pytest.mark.slow
def test_resnet20_loses_accuracy_with_severity_noise_and_blur_hurt_most(cifar10_root: Path,
                                                                       shared_weights_dir: Path) -> None:
    from moo_compress.data import load_dataset
    from moo_compress.models import load_pretrained

    clean = load_dataset("cifar10", "test", data_root=cifar10_root)
    corrupted = load_corrupted(clean, n_per_class=20, severities=[1, 3, 5], seed=0)  # 200 images, 15 corruptions
    pretrained = load_pretrained("resnet20", "cifar10", weights_dir=shared_weights_dir)
    evaluator = Evaluator(pretrained.model, mean=pretrained.mean, std=pretrained.std, batch_size=500)
    table = evaluate_robustness(evaluator, corrupted)
    clean_accuracy = evaluator.accuracy(clean.images[corrupted.indices], corrupted.labels)
    by_severity = metrics.accuracy_by_severity(table, severities=[1, 3, 5])
    assert clean_accuracy > by_severity[1] > by_severity[3] > by_severity[5]
    by_family = metrics.accuracy_by_family(table, severities=[1, 3, 5])
    assert max(by_family["noise"], by_family["blur"]) < min(by_family["weather"], by_family["digital"]), by_family
