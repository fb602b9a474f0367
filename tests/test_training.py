"""Training: augmentation, a few steps on tiny data, and resumption."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from moo_compress.data import load_image_folder
from moo_compress.errors import ConfigError
from moo_compress.models import create_model
from moo_compress.training import TrainRecipe, augment_batch, train_model

MEAN, STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)


def test_augmentation_is_crop_and_flip_of_the_input() -> None:
    images = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (64, 8, 8, 3), dtype=np.uint8))
    out = augment_batch(images, torch.Generator().manual_seed(0), pad=0)
    assert out.dtype == torch.uint8 and out.shape == images.shape
    same = (out == images).flatten(1).all(1)
    flipped = (out == images.flip(2)).flatten(1).all(1)
    assert bool((same | flipped).all()) and 10 < int(flipped.sum()) < 54
    padded = augment_batch(images, torch.Generator().manual_seed(0), pad=2)
    assert padded.shape == images.shape
    assert not torch.equal(padded, out)


def test_recipe_validates_and_round_trips() -> None:
    recipe = TrainRecipe(epochs=3, lr=0.05)
    assert TrainRecipe.from_dict(recipe.to_dict()) == recipe
    with pytest.raises(ConfigError, match="epochs"):
        TrainRecipe(epochs=0)
    with pytest.raises(ConfigError, match="precision"):
        TrainRecipe(precision="fp16")
    with pytest.raises(ConfigError, match="unknown recipe keys"):
        TrainRecipe.from_dict({"epochs": 1, "momentum_typo": 0.9})


def test_a_few_steps_reduce_the_loss(tiny_folder: Path) -> None:
    train = load_image_folder(tiny_folder, "train", name="tiny")
    test = load_image_folder(tiny_folder, "test", name="tiny")
    model = create_model("resnet20", num_classes=3)
    recipe = TrainRecipe(epochs=8, batch_size=8, lr=0.05, precision="fp32", augment=False)
    result = train_model(model, train, recipe=recipe, mean=MEAN, std=STD, device="cpu", test=test, progress=False,
                         log=lambda _: None)
    assert result.epochs_done == 8 and result.steps_done == 8 * 3
    assert result.test_accuracy is not None and result.test_accuracy > 1 / 3  # better than chance
    assert np.isfinite(result.final_loss)


def test_resumed_run_equals_uninterrupted_run(tiny_folder: Path, tmp_path: Path) -> None:
    train = load_image_folder(tiny_folder, "train", name="tiny")
    recipe = TrainRecipe(epochs=2, batch_size=8, precision="fp32")

    def run(state: Path, max_steps: int | None = None) -> torch.nn.Module:
        model = create_model("resnet20", num_classes=3)
        train_model(model, train, recipe=recipe, mean=MEAN, std=STD, device="cpu", state_path=state,
                    progress=False, max_steps=max_steps, log=lambda _: None)
        return model

    straight = run(tmp_path / "a.state")
    run(tmp_path / "b.state", max_steps=4)  # finishes epoch 1 (3 steps), dies in epoch 2
    resumed = run(tmp_path / "b.state")
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, msg=name)

    other = TrainRecipe(epochs=2, batch_size=8, precision="fp32", lr=0.2)
    with pytest.raises(ConfigError, match="different run"):
        train_model(create_model("resnet20", num_classes=3), train, recipe=other, mean=MEAN, std=STD,
                    device="cpu", state_path=tmp_path / "a.state", progress=False)
