"""Shared fixtures: an isolated cache, tiny data made on the fly, and the real data when available.

Tests that need the real CIFAR-10 images or the pretrained checkpoints are marked ``shared_data``
and read them from ``$MOO_COMPRESS_DATA`` / ``$MOO_COMPRESS_WEIGHTS`` (CI points both at ``../shared``);
they are skipped when those are unset. Select them with ``pytest -m shared_data``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from moo_compress import paths

# Captured at import, before any test changes the environment.
_DATA = os.environ.get(paths.DATA_ENV)
_WEIGHTS = os.environ.get(paths.WEIGHTS_ENV)


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test writes caches into one session-wide temporary folder, never ~/.cache."""
    cache = tmp_path_factory.getbasetemp() / "moo_compress_cache"
    monkeypatch.setenv(paths.CACHE_ENV, str(cache))
    monkeypatch.setenv("MOO_COMPRESS_OFFLINE", "1")
    return cache


@pytest.fixture(scope="session")
def shared_data_dir() -> Path:
    """``$MOO_COMPRESS_DATA`` (the folder holding ``cifar10-jpeg``), or skip."""
    if not _DATA or not Path(_DATA).is_dir():
        pytest.skip(f"${paths.DATA_ENV} is not set to a folder of datasets")
    return Path(_DATA)


@pytest.fixture(scope="session")
def cifar10_root(shared_data_dir: Path) -> Path:
    """The real CIFAR-10 ImageFolder tree, or skip."""
    root = shared_data_dir / "cifar10-jpeg"
    if not root.is_dir():
        pytest.skip(f"{root} not found")
    return root


@pytest.fixture(scope="session")
def shared_weights_dir() -> Path:
    """``$MOO_COMPRESS_WEIGHTS`` (the shared pretrained checkpoints), or skip."""
    if not _WEIGHTS or not Path(_WEIGHTS).is_dir():
        pytest.skip(f"${paths.WEIGHTS_ENV} is not set to the folder of pretrained checkpoints")
    return Path(_WEIGHTS)


def make_image_folder(root: Path, *, classes: int = 3, per_split: dict[str, int] | None = None,
                      size: int = 32, seed: int = 0, fmt: str = "png") -> Path:
    """Writes a tiny ImageFolder tree ``root/{train,test}/<class>/NNNN.<fmt>`` of random images."""
    per_split = per_split or {"train": 8, "test": 4}
    rng = np.random.default_rng(seed)
    for split, count in per_split.items():
        for c in range(classes):
            folder = root / split / f"class{c}"
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                # class-dependent mean colour, so a model can learn the task
                base = np.full((size, size, 3), 40 + 60 * c, dtype=np.int16)
                img = np.clip(base + rng.integers(-30, 30, (size, size, 3)), 0, 255).astype(np.uint8)
                Image.fromarray(img).save(folder / f"{i:04d}.{fmt}")
    return root


@pytest.fixture
def tiny_folder(tmp_path: Path) -> Path:
    """A 3-class ImageFolder tree with 8 train and 4 test PNG images per class."""
    return make_image_folder(tmp_path / "tiny")
