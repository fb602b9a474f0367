"""Tiny models and data for the compression tests."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from moo_compress.compress.calibration import CalibrationData


class TinyNet(nn.Module):
    """conv-bn-relu x2, pool, linear-relu, linear: every layer kind the engine touches."""

    def __init__(self, width: int = 16, num_classes: int = 4) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, 2 * width, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(2 * width)
        self.fc1 = nn.Linear(2 * width * 4 * 4, 64)
        self.fc2 = nn.Linear(64, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn1(self.conv1(x)))
        x = nn.functional.max_pool2d(x, 2)
        x = torch.relu(self.bn2(self.conv2(x)))
        x = nn.functional.adaptive_avg_pool2d(x, 4).flatten(1)
        return self.fc2(torch.relu(self.fc1(x)))


def make_tiny(seed: int = 0, **kwargs: int) -> TinyNet:
    torch.manual_seed(seed)
    model = TinyNet(**kwargs)
    with torch.no_grad():  # non-trivial batch-norm statistics, so re-estimation has something to change
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    return model.eval()


@pytest.fixture
def tiny() -> TinyNet:
    """A seeded TinyNet in eval mode (about 40k weights)."""
    return make_tiny()


@pytest.fixture
def calibration() -> CalibrationData:
    """64 random 16x16 images with labels in 0..3."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(64, 16, 16, 3), dtype=np.uint8)
    labels = rng.integers(0, 4, size=64)
    return CalibrationData(images, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25), labels=labels)


@pytest.fixture
def inputs() -> torch.Tensor:
    """A fixed batch of 8 normalised 16x16 inputs."""
    return torch.randn(8, 3, 16, 16, generator=torch.Generator().manual_seed(1))


def weight(model: nn.Module, name: str) -> np.ndarray:
    """A module's weight as a numpy array."""
    return dict(model.named_modules())[name].weight.detach().cpu().numpy()
