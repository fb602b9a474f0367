"""A model's evaluation resize (input size, crop fraction, interpolation) from its own metadata."""

from __future__ import annotations

from pathlib import Path

import pytest

from moo_compress.data.resize import Sizing
from moo_compress.models import load_pretrained, materialize_source


def test_a_timm_models_crop_and_interpolation_travel_to_the_evaluation(tmp_path: Path) -> None:
    timm = pytest.importorskip("timm")
    from moo_compress.models.sources import build_from_source, source_metadata
    from moo_compress.search.candidate import model_sizing

    cfg = timm.models.get_pretrained_cfg("resnet10t")
    meta = source_metadata("timm:resnet10t", build_from_source("timm:resnet10t", 10))
    assert meta["crop_pct"] == cfg.crop_pct and meta["interpolation"] == cfg.interpolation
    path = materialize_source("timm:resnet10t", num_classes=10, cache_dir=tmp_path)
    pretrained = load_pretrained("timm:resnet10t", "imagefolder", weights=path, num_classes=10, download=False)
    assert pretrained.crop_pct == cfg.crop_pct and pretrained.interpolation == cfg.interpolation
    assert model_sizing(pretrained) == Sizing(size=tuple(cfg.input_size[1:]), crop_pct=cfg.crop_pct,
                                              interpolation=cfg.interpolation)


def test_a_model_without_an_evaluation_resize_gets_the_imagenet_convention(tmp_path: Path) -> None:
    from moo_compress.search.candidate import model_sizing

    factory = tmp_path / "net.py"
    factory.write_text("import torch.nn as nn\n\ndef build(num_classes=10):\n"
                       "    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(),"
                       " nn.Linear(4, num_classes))\n")
    source = f"{factory}:build"
    path = materialize_source(source, num_classes=10, mean=(0.5,) * 3, std=(0.25,) * 3, input_size=40,
                              cache_dir=tmp_path)
    pretrained = load_pretrained(source, "imagefolder", weights=path, num_classes=10, download=False)
    assert pretrained.crop_pct is None and model_sizing(pretrained) == Sizing(size=(40, 40))
    unsized = materialize_source(source, num_classes=10, mean=(0.5,) * 3, std=(0.25,) * 3, cache_dir=tmp_path)
    assert model_sizing(load_pretrained(source, "imagefolder", weights=unsized, num_classes=10,
                                        download=False)) is None  # takes the data as it is
