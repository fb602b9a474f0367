"""A user model on an ImageFolder tree of natural-resolution photographs (several sizes, ``train/`` and
``val/``): brought to the model's input by resize and centre crop, then searched end to end."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from moo_compress.cli.search import main as search_main
from tests.search.conftest import TINY_SPACE
from tests.search.test_user_model import MEAN, MODEL_FILE, STD


def _photos(root: Path) -> Path:
    rng = np.random.default_rng(0)
    shapes = [(48, 64), (70, 40), (36, 36), (90, 120)]  # (height, width): none of them the model's 32 pixels
    for split, count in (("train", 8), ("val", 8)):
        for c in range(3):
            folder = root / split / f"class{c}"
            folder.mkdir(parents=True)
            for i in range(count):
                h, w = shapes[i % len(shapes)]
                image = np.clip(40 + 70 * c + rng.integers(-30, 30, (h, w, 3)), 0, 255).astype(np.uint8)
                Image.fromarray(image).save(folder / f"{i:04d}.jpg")
    return root


def _args(tmp_path: Path, *extra: str) -> list[str]:
    (tmp_path / "mynet.py").write_text(MODEL_FILE)
    space = tmp_path / "tiny.yaml"
    space.write_text(yaml.safe_dump({**TINY_SPACE, "algorithm": {"pop_size": 4, "generations": 1}}))
    return ["--model", f"{tmp_path / 'mynet.py'}:build", "--data", str(_photos(tmp_path / "photos")),
            "--mean", MEAN, "--std", STD, "--space", str(space), "--eval-images", "4", "--select-images", "4",
            "--final-images", "4", "--precision", "fp32", "--device", "cpu", "--workers", "1",
            "--cache-dir", str(tmp_path / "cache"), *extra]


@pytest.mark.slow
def test_natural_resolution_photos_are_cropped_to_the_input_and_searched(tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert search_main(_args(tmp_path, "--model", f"{tmp_path / 'mynet.py'}:build", "--input-size", "32",
                             "--out", str(out))) == 0
    pareto = pd.read_csv(out / "pareto.csv")
    assert len(pareto) and np.isfinite(pareto["final/mean_corruption_accuracy"].dropna()).all()
    assert np.isfinite(pareto["clean_accuracy"]).all()


@pytest.mark.slow
@pytest.mark.parametrize("size", [64, 224])
def test_64_and_224_pixel_trees_are_searched_with_corruptions_at_their_size(tmp_path: Path, size: int) -> None:
    """Corruptions are generated at the model's input size with that size's parameter set (Tiny-ImageNet-C
    at 64 pixels, ImageNet-C at 224), after the photographs are resized and cropped to it."""
    from moo_compress.data.corruptions import param_set_for_size

    out = tmp_path / "run"
    assert search_main(_args(tmp_path, "--input-size", str(size), "--generations", "2", "--out", str(out))) == 0
    pareto = pd.read_csv(out / "pareto.csv")
    assert len(pareto) and np.isfinite(pareto["final/mean_corruption_accuracy"].dropna()).all()
    generated = list((tmp_path / "cache" / "corruptions").glob("*/key.json"))
    assert generated
    import json

    keys = [json.loads(g.read_text()) for g in generated]
    assert {k.get("param_set") for k in keys} == {param_set_for_size(size, size).name}
    assert param_set_for_size(size, size).name == {64: "tinyimagenet", 224: "imagenet"}[size]


def test_natural_photos_without_an_input_size_say_how_to_give_one(tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    assert search_main(_args(tmp_path, "--out", str(tmp_path / "run"))) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "differ in size" in err and "--input-size" in err


@pytest.mark.slow
def test_a_space_can_name_the_corruption_parameter_set(tmp_path: Path) -> None:
    """``objectives.corruption_params`` overrides the set chosen by size (here ImageNet-C's on 32 pixels)."""
    import json

    from moo_compress.errors import ConfigError
    from moo_compress.search.space import SearchSpace

    args = _args(tmp_path, "--input-size", "32", "--out", str(tmp_path / "run"))
    space = tmp_path / "tiny.yaml"
    data = yaml.safe_load(space.read_text())
    data["objectives"]["corruption_params"] = "imagenet"
    space.write_text(yaml.safe_dump(data))
    assert search_main(args) == 0
    keys = [json.loads(k.read_text()) for k in (tmp_path / "cache" / "corruptions").glob("*/key.json")]
    assert keys and {k.get("param_set") for k in keys} == {"imagenet"}
    config = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert config["run"]["corruption_params"] == "imagenet"  # re-evaluation of the run uses the same set
    data["objectives"]["corruption_params"] = "imagenet-c"
    with pytest.raises(ConfigError, match=r"unknown corruption parameter set 'imagenet-c'.*valid: cifar"):
        SearchSpace.from_dict(data)
