"""``python -m moo_compress.corrupt`` on ImageFolder trees of other sizes: the parameter set follows the images'
size unless ``--corruption-params`` names one, and ``--input-size`` brings photographs of several sizes to one."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from moo_compress.cli import corrupt as corrupt_cli
from moo_compress.data import load_dataset
from moo_compress.data.corruptions import corrupt
from moo_compress.data.releases import MANIFEST, open_release
from moo_compress.data.resize import Sizing
from tests.data.synthetic import natural_images


def _photos(root: Path) -> Path:
    """Two classes of three photographs each, of different sizes and shapes."""
    shapes = [(150, 200), (260, 180), (224, 224)]
    for c in range(2):
        for split in ("train", "test"):
            folder = root / split / f"class{c}"
            folder.mkdir(parents=True)
            for i, shape in enumerate(shapes):
                Image.fromarray(natural_images(1, shape, seed=10 * c + i)[0]).save(folder / f"{i}.png")
    return root


def test_photographs_at_the_input_size_get_the_imagenet_parameters(tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    root = _photos(tmp_path / "photos")
    out, preview = tmp_path / "out", tmp_path / "grid.png"
    assert corrupt_cli.main(["--dataset", "imagefolder", "--data-root", str(root), "--input-size", "128",
                             "--corruptions", "fog", "pixelate", "--severities", "2", "--out", str(out),
                             "--workers", "1", "--preview", str(preview), "--no-progress"]) == 0
    assert "6 images of 128 x 128 (imagenet parameters)" in capsys.readouterr().out
    clean = load_dataset("imagefolder", "test", data_root=root, sizing=Sizing(size=(128, 128)))
    release = open_release(out)
    assert release.params == "imagenet" and json.loads((out / MANIFEST).read_text())["shape"] == [128, 128, 3]
    assert np.array_equal(release.images("pixelate", 2), corrupt(clean.images, "pixelate", 2, params="imagenet"))
    assert preview.is_file()


def test_the_parameter_set_can_be_named(tmp_path: Path) -> None:
    root = _photos(tmp_path / "photos")
    out = tmp_path / "out"
    assert corrupt_cli.main(["--dataset", "imagefolder", "--data-root", str(root), "--input-size", "64",
                             "--corruption-params", "cifar", "--corruptions", "contrast", "--severities", "5",
                             "--limit", "4", "--out", str(out), "--workers", "1", "--no-progress"]) == 0
    release = open_release(out)
    assert release.params == "cifar" and release.images("contrast", 5).shape == (4, 64, 64, 3)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--corruption-params", "imagenett", "--preview", "x.png"], "did you mean 'imagenet'"),
        (["--preview", "x.png"], "--input-size"),  # photographs of several sizes need one
        (["--input-size", "0", "--preview", "x.png"], "--input-size must be a positive"),
    ],
)
def test_user_errors_are_one_line(argv: list[str], message: str, tmp_path: Path,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    root = _photos(tmp_path / "photos")
    assert corrupt_cli.main(["--dataset", "imagefolder", "--data-root", str(root), *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
