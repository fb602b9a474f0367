"""A tiny search setting: a random ResNet-20 checkpoint, a 10-class ImageFolder and a small space."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from moo_compress.models import create_model
from moo_compress.search import (
    ExecutionSettings,
    FidelitySettings,
    OutputSettings,
    SearchSettings,
    TargetSettings,
)
from tests.conftest import make_image_folder

TINY_SPACE = {
    "name": "tiny",
    "genes": {"sparsity": {"choices": [0.0, 0.5, 0.8]}, "clusters": {"choices": ["off", 8]},
              "weight_bits": {"choices": [32, 8, 4]}},
    "exclude": {"first_conv": True},
    "recovery": {"bn_images": 20},
    "objectives": {"corruptions": ["gaussian_noise", "defocus_blur", "contrast"], "severities": [1, 3, 5]},
    "algorithm": {"pop_size": 4, "generations": 2},
}


def tiny_search_settings(folder: Path) -> SearchSettings:
    """Writes the data, checkpoint and space of the tiny search into ``folder``; returns its settings."""
    data = make_image_folder(folder / "cifar10-tiny", classes=10, per_split={"train": 2, "test": 6})
    torch.manual_seed(0)
    weights = folder / "resnet20-tiny.pt"
    torch.save(create_model("resnet20").state_dict(), weights)
    space = folder / "tiny.yaml"
    space.write_text(yaml.safe_dump(TINY_SPACE))
    return SearchSettings(
        TargetSettings("resnet20", weights=str(weights), data_root=str(data), space=str(space)),
        fidelity=FidelitySettings(eval_images=20, select_images=30, final_images=30),
        execution=ExecutionSettings(precision="fp32", device="cpu", cache_dir=str(folder / "cache"), workers=1),
        output=OutputSettings(out=str(folder / "run")),
    )


@pytest.fixture
def tiny_search(tmp_path: Path) -> SearchSettings:
    """Settings of a search that takes a few seconds (18 plans, 4 x 2 evaluations)."""
    return tiny_search_settings(tmp_path)
