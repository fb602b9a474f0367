"""ImageFolder trees of any image size: timm's resize and centre crop, images of one small size kept,
``val/`` for ``test/``, labels without decoding, and the decoded cache as a memory map."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from moo_compress.data import dataset_labels, datasets, load_dataset, load_image_folder
from moo_compress.data.resize import Sizing
from moo_compress.errors import ConfigError, DataFormatError


def _natural_folder(root: Path, split: str = "test") -> list[Path]:
    """Three classes of photographs of different shapes (portrait, landscape, square, tiny)."""
    rng = np.random.default_rng(0)
    files = []
    shapes = [(60, 45), (37, 80), (64, 64), (20, 28)]  # (height, width)
    for c in range(3):
        folder = root / split / f"class{c}"
        folder.mkdir(parents=True)
        for i, (h, w) in enumerate(shapes):
            # smooth content, so that interpolation differences would show
            y, x = np.mgrid[0:h, 0:w]
            image = np.stack([(x * 255 // w), (y * 255 // h), np.full_like(x, 40 * c + 10 * i)], -1)
            image = (image + rng.integers(0, 20, image.shape)).clip(0, 255).astype(np.uint8)
            path = folder / f"{i:04d}.{'png' if i % 2 else 'jpg'}"
            Image.fromarray(image).save(path)
            files.append(path)
    return files


def test_mixed_sizes_need_an_input_size_and_the_error_says_so(tmp_path: Path) -> None:
    _natural_folder(tmp_path)
    with pytest.raises(DataFormatError, match=r"differ in size.*--input-size"):
        load_image_folder(tmp_path, "test", name="nat", cache=tmp_path / "cache")


@pytest.mark.parametrize("interpolation", ["bilinear", "bicubic"])
def test_natural_images_get_torchvisions_resize_and_centre_crop(tmp_path: Path, interpolation: str) -> None:
    from torchvision import transforms

    files = _natural_folder(tmp_path)
    sizing = Sizing(size=(32, 32), crop_pct=0.875, interpolation=interpolation)
    ds = load_image_folder(tmp_path, "test", name="nat", cache=tmp_path / "cache", sizing=sizing)
    assert ds.images.shape == (12, 32, 32, 3) and ds.labels.tolist() == [0] * 4 + [1] * 4 + [2] * 4
    mode = transforms.InterpolationMode(interpolation)
    reference = transforms.Compose([transforms.Resize(math.floor(32 / 0.875), interpolation=mode),
                                    transforms.CenterCrop(32)])
    for index, path in enumerate(files):
        expected = np.asarray(reference(Image.open(path).convert("RGB")))
        np.testing.assert_array_equal(ds.images[index], expected)


def test_the_crop_matches_timms_evaluation_transform(tmp_path: Path) -> None:
    timm_data = pytest.importorskip("timm.data")
    import torch

    files = _natural_folder(tmp_path)
    sizing = Sizing(size=(48, 48), crop_pct=0.9, interpolation="bicubic")
    ds = load_image_folder(tmp_path, "test", name="nat", cache=tmp_path / "cache", sizing=sizing)
    transform = timm_data.create_transform(input_size=(3, 48, 48), crop_pct=0.9, interpolation="bicubic",
                                           mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
    for index, path in enumerate(files):
        expected = transform(Image.open(path).convert("RGB"))  # float on [0, 1], CHW
        ours = torch.from_numpy(np.array(ds.images[index])).permute(2, 0, 1).float() / 255
        assert torch.allclose(ours, expected, atol=0.5 / 255)


def test_small_images_of_one_size_are_kept_and_decoded_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "data"
    for c in range(2):
        (folder / "train" / f"c{c}").mkdir(parents=True)
        for i in range(3):
            Image.fromarray(np.full((32, 32, 3), 50 * c + i, np.uint8)).save(folder / "train" / f"c{c}" / f"{i}.png")
    plain = load_image_folder(folder, "train", name="small", cache=tmp_path / "cache")
    calls = []
    monkeypatch.setattr(datasets, "_decode", lambda path: calls.append(path))
    for size in (32, 224):  # upsampled whole later, after corruptions: the cache entry is the plain one
        sized = load_image_folder(folder, "train", name="small", cache=tmp_path / "cache",
                                  sizing=Sizing(size=(size, size)))
        assert sized.images.shape == (6, 32, 32, 3) and sized.fingerprint == plain.fingerprint
    assert calls == []
    shrunk = load_image_folder(folder, "train", name="small", cache=tmp_path / "cache", sizing=Sizing(size=(16, 16)))
    assert shrunk.images.shape == (6, 16, 16, 3)  # larger than the input: resized and cropped


def test_a_val_folder_stands_for_test_and_labels_need_no_decoding(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    _natural_folder(tmp_path, "val")
    _natural_folder(tmp_path, "train")
    monkeypatch.setenv("MOO_COMPRESS_CACHE", str(tmp_path / "cache"))
    labels = dataset_labels("imagefolder", "test", data_root=tmp_path)  # mixed sizes: no decode, no error
    assert labels.tolist() == [0] * 4 + [1] * 4 + [2] * 4
    ds = load_dataset("imagefolder", "test", data_root=tmp_path, sizing=Sizing(size=(24, 24)))
    assert ds.source.endswith("val") and np.array_equal(ds.labels, labels)
    assert isinstance(ds.images, np.memmap) and not ds.images.flags.writeable  # the first load too
    again = load_dataset("imagefolder", "test", data_root=tmp_path, sizing=Sizing(size=(24, 24)))
    assert again.fingerprint == ds.fingerprint and isinstance(again.images, np.memmap)


def test_sizing_validates_its_fields() -> None:
    with pytest.raises(ConfigError, match="crop_pct"):
        Sizing(size=(32, 32), crop_pct=1.5)
    with pytest.raises(ConfigError, match="valid: bilinear"):
        Sizing(size=(32, 32), interpolation="area")
    assert Sizing(size=(32, 32)).to_dict() == {"size": [32, 32], "crop_pct": 0.875, "interpolation": "bilinear"}
