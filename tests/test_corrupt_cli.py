"""``python -m moo_compress.corrupt`` on a tiny ImageFolder dataset."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import moo_compress.cli as cli
from moo_compress.cli import corrupt as corrupt_cli
from moo_compress.data import load_dataset, stratified_indices
from moo_compress.data.cifar_c import open_release
from moo_compress.data.corruptions import corrupt
from tests.conftest import make_image_folder


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return make_image_folder(tmp_path / "tiny", classes=10, per_split={"train": 1, "test": 3})


def test_generates_the_release_layout_and_a_preview(folder: Path, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    out, preview = tmp_path / "c10c", tmp_path / "grid.png"
    status = corrupt_cli.main(["--data-root", str(folder), "--corruptions", "noise", "fog", "--severities", "2", "4",
                               "--limit", "20", "--seed", "1", "--workers", "1", "--out", str(out),
                               "--preview", str(preview), "--no-progress"])
    assert status == 0
    release = open_release(out)
    assert release.corruptions == ("gaussian_noise", "shot_noise", "impulse_noise", "fog", "speckle_noise")
    assert release.severities == (2, 4) and len(release) == 20
    clean = load_dataset("cifar10", "test", data_root=folder)
    subset = clean.subset(stratified_indices(clean.labels, 2, seed=1))
    assert np.array_equal(np.load(out / "labels.npy"), np.tile(subset.labels, 2))
    assert np.array_equal(release.images("fog", 4), corrupt(subset.images, "fog", 4, seed=1))
    assert Image.open(preview).size[0] > 200
    assert "5 corruptions x 2 severities x 20 images" in capsys.readouterr().out


def test_preview_alone_and_through_the_console_script(folder: Path, tmp_path: Path) -> None:
    preview = tmp_path / "one.png"
    assert cli.main(["corrupt", "--data-root", str(folder), "--corruptions", "contrast", "--preview", str(preview),
                     "--preview-index", "2"]) == 0
    assert preview.is_file()


def test_written_images_equal_corrupt(folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "c10c"
    assert corrupt_cli.main(["--data-root", str(folder), "--corruptions", "pixelate", "--severities", "5",
                             "--out", str(out), "--no-progress"]) == 0
    clean = load_dataset("cifar10", "test", data_root=folder)
    assert np.array_equal(open_release(out).images("pixelate", 5), corrupt(clean.images, "pixelate", 5))


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--corruptions", "snw", "--out", "x"], "did you mean 'snow'"),
        (["--severities", "6", "--out", "x"], "severity must be an integer from 1 to 5"),
        ([], "nothing to do"),
        (["--limit", "5", "--out", "x"], "--limit must be at least"),
        (["--download-release"], "--download-release needs --out"),
    ],
)
def test_user_errors_are_one_line(argv: list[str], message: str, folder: Path,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    assert corrupt_cli.main(["--data-root", str(folder), *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
