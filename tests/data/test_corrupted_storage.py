"""Corrupted sets at any image size: the parameter set in generated keys and releases, PNG-compressed
caches for large sets, and ImageNet-C-style release folders matched to a clean ImageFolder test set."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from moo_compress import paths
from moo_compress.data import ArrayDataset, corruption_cache, image_store, load_dataset, stratified_indices
from moo_compress.data.corrupted_loading import load_corrupted
from moo_compress.data.corrupted_set import CorruptedSet
from moo_compress.data.corruptions import GENERATOR_VERSION, corrupt, get_param_set, params_fingerprint
from moo_compress.data.release_generation import generate_release
from moo_compress.data.releases import MANIFEST, open_release
from moo_compress.errors import ConfigError, DataFormatError, DataNotFoundError, UnknownNameError
from moo_compress.fileio import stable_hash
from tests.data.synthetic import natural_images


@pytest.fixture(autouse=True)
def _no_data_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(paths.DATA_ENV, raising=False)


def clean_set(count: int = 12, size: int | tuple[int, int] = 64, classes: int = 3, seed: int = 0) -> ArrayDataset:
    images = natural_images(count, size, seed=seed)
    labels = np.arange(count, dtype=np.int64) % classes
    return ArrayDataset(images, labels, tuple(f"c{i}" for i in range(classes)), "imagefolder", "test", "memory",
                        stable_hash(["clean", count, size, classes, seed]))


def _folder(corrupted: CorruptedSet) -> Path:
    return Path(corrupted.source.split(" ", 1)[1])


# ---------------------------------------------------------------------------------------- generated sets


def test_generated_sets_use_the_set_of_their_size_and_record_it(tmp_path: Path) -> None:
    clean = clean_set(12, 64)
    chosen = load_corrupted(clean, corruptions=["fog", "pixelate"], severities=[2], n_per_class=2, seed=1,
                            cache_dir=tmp_path)
    indices = stratified_indices(clean.labels, 2, seed=1)
    assert chosen.params == "tinyimagenet"
    for c, s in chosen.keys():
        assert np.array_equal(chosen.images(c, s), corrupt(clean.images[indices], c, s, seed=1, params="tinyimagenet"))
    key = json.loads((_folder(chosen) / "key.json").read_text())
    assert key["param_set"] == "tinyimagenet" and key["params"] == get_param_set("tinyimagenet").fingerprint()
    assert key["block_size"] == 250  # 64 x 64 images: as many pixels as 1,000 CIFAR images
    named = load_corrupted(clean, corruptions=["fog", "pixelate"], severities=[2], n_per_class=2, seed=1,
                           cache_dir=tmp_path, params="imagenet")
    assert named.params == "imagenet" and named.fingerprint != chosen.fingerprint
    assert _folder(named) != _folder(chosen)
    assert np.array_equal(named.images("fog", 2), corrupt(clean.images[indices], "fog", 2, seed=1, params="imagenet"))
    with pytest.raises(UnknownNameError, match="valid: cifar, tinyimagenet, imagenet"):
        load_corrupted(clean, corruptions=["fog"], cache_dir=tmp_path, params="imagenet-c")


def test_cifar_generation_keys_are_the_ones_written_before_parameter_sets(tmp_path: Path) -> None:
    """Cached CIFAR sets (and the fingerprints runs were started with) stay valid."""
    images = np.random.default_rng(0).integers(0, 256, size=(12, 32, 32, 3), dtype=np.uint8)
    clean = ArrayDataset(images, np.arange(12) % 3, ("a", "b", "c"), "cifar10", "test", "memory", "f" * 64)
    corrupted = load_corrupted(clean, corruptions=["contrast"], severities=[1], cache_dir=tmp_path)
    expected = {"generator_version": GENERATOR_VERSION, "params": params_fingerprint(), "block_size": 1000, "seed": 0,
                "clean_fingerprint": "f" * 64, "indices": stable_hash(list(range(12))), "severities": []}
    assert json.loads((_folder(corrupted) / "key.json").read_text()) == expected
    assert _folder(corrupted).name == f"cifar10-{stable_hash(expected)}" and corrupted.params == "cifar"


def test_large_sets_are_cached_as_png_and_read_back_exactly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(image_store, "RAW_LIMIT_BYTES", 5 * 48 * 40 * 3)  # 6 images of 48 x 40 are "large"
    clean = clean_set(6, (48, 40))
    assert image_store.choose_format(5, (48, 40, 3)) == "npy" and image_store.choose_format(6, (48, 40, 3)) == "png"
    first = load_corrupted(clean, corruptions=["shot_noise", "glass_blur"], severities=[3, 5], seed=2,
                           cache_dir=tmp_path)
    folder = _folder(first)
    assert sorted(p.name for p in folder.glob("*.zip")) == [
        "glass_blur-3.png.zip", "glass_blur-5.png.zip", "shot_noise-3.png.zip", "shot_noise-5.png.zip"]
    assert not list(folder.glob("*.npy"))
    for c, s, images in first:
        assert not isinstance(images, np.memmap)
        assert np.array_equal(images, corrupt(clean.images, c, s, seed=2))
    with zipfile.ZipFile(folder / "shot_noise-3.png.zip") as archive, Image.open(archive.open("0000004.png")) as png:
        assert np.array_equal(np.asarray(png), first.images("shot_noise", 3)[4])  # RGB PNG, any tool reads it

    def must_not_run(*args: object, **kwargs: object) -> None:
        raise AssertionError("cached images were regenerated")

    monkeypatch.setattr(corruption_cache, "run_jobs", must_not_run)
    again = load_corrupted(clean, corruptions=["shot_noise", "glass_blur"], severities=[3, 5], seed=2,
                           cache_dir=tmp_path)
    assert again.fingerprint == first.fingerprint
    monkeypatch.undo()
    monkeypatch.setattr(image_store, "RAW_LIMIT_BYTES", 5 * 48 * 40 * 3)
    data = bytearray((folder / "glass_blur-5.png.zip").read_bytes())
    data[100] ^= 0xFF
    (folder / "glass_blur-5.png.zip").write_bytes(bytes(data))
    with pytest.warns(RuntimeWarning, match="does not match the digest"):
        repaired = load_corrupted(clean, corruptions=["glass_blur"], severities=[5], seed=2, cache_dir=tmp_path)
    assert np.array_equal(repaired.images("glass_blur", 5), corrupt(clean.images, "glass_blur", 5, seed=2))


@pytest.mark.slow
def test_png_generation_with_workers_equals_in_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from moo_compress.data import corruption_jobs

    monkeypatch.setattr(image_store, "RAW_LIMIT_BYTES", 0)
    images = natural_images(5, 224, seed=3)  # blocks of 20 at 224: one chunk per job
    targets = []
    for workers in (1, 2):
        jobs = [corruption_jobs.Job(name, 4, tmp_path / f"{name}-{workers}.zip", fmt="png")
                for name in ("motion_blur", "spatter")]
        corruption_jobs.run_jobs(images, jobs, seed=5, workers=workers, scratch=tmp_path)
        targets.append([image_store.read_png_zip(job.target, 5, (224, 224, 3)) for job in jobs])
    for one, two, name in zip(*targets, ("motion_blur", "spatter"), strict=True):
        assert np.array_equal(one, two) and np.array_equal(one, corrupt(images, name, 4, seed=5))


def test_map_transforms_images_when_read(tmp_path: Path) -> None:
    from moo_compress.data.resize import resize_images

    corrupted = load_corrupted(clean_set(6, 64), corruptions=["contrast"], severities=[1, 2], cache_dir=tmp_path)
    calls = []

    def upsample(images: np.ndarray) -> np.ndarray:
        calls.append(len(images))
        return resize_images(images, (96, 96))

    big = corrupted.map(upsample)
    assert calls == [] and big.fingerprint == corrupted.fingerprint and big.keys() == corrupted.keys()
    assert big.images("contrast", 2).shape == (6, 96, 96, 3) and calls == [6]
    assert [images.shape[1] for _, _, images in big] == [96, 96]


# ---------------------------------------------------------------------------------------- generated releases


def test_generate_release_at_any_size(tmp_path: Path) -> None:
    clean = clean_set(10, (48, 56))
    out = generate_release(clean, tmp_path / "rel", corruptions=["snow", "contrast"], severities=[1, 4], workers=1,
                           progress=False, params="tinyimagenet")
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["params"] == "tinyimagenet" and manifest["shape"] == [48, 56, 3]
    release = open_release(out, corruptions=["snow"])
    assert release.image_shape == (48, 56, 3) and release.params == "tinyimagenet"
    assert np.load(out / "snow.npy", mmap_mode="r").shape == (20, 48, 56, 3)
    assert np.array_equal(release.images("snow", 4), corrupt(clean.images, "snow", 4, params="tinyimagenet"))
    subset = load_corrupted(clean, corruptions=["contrast"], severities=[4], n_per_class=2, release_dir=out)
    assert subset.params == "tinyimagenet" and subset.images("contrast", 4).shape == (6, 48, 56, 3)
    with pytest.raises(ConfigError, match="made with the tinyimagenet parameters, not imagenet"):
        load_corrupted(clean, corruptions=["contrast"], severities=[4], release_dir=out, params="imagenet")


# ---------------------------------------------------------------------------------------- release folders


def _clean_tree(root: Path, size: int = 40) -> Path:
    """An ImageFolder tree with 3 classes x 3 test images (PNG, as a user's data might be)."""
    images = natural_images(9, size, seed=4)
    for split in ("train", "test"):
        for index, image in enumerate(images):
            folder = root / split / f"n0{index % 3}"
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image).save(folder / f"val_{index}.png")
    return root


def _release_tree(root: Path, clean: ArrayDataset, corruptions: tuple[str, ...] = ("fog", "snow"),
                  classes: tuple[str, ...] | None = None) -> Path:
    """An ImageNet-C-style tree: ``<corruption>/<severity>/<class>/<file>.JPEG`` (saved losslessly as PNG
    data, so the test can compare pixels), the value of every pixel = 10 severity + 50 corruption index."""
    files = sorted(Path(clean.source).glob("*/*.png"))
    for k, name in enumerate(corruptions):
        for severity in range(1, 6):
            for path in files:
                folder = root / name / str(severity) / (classes[0] if classes else path.parent.name)
                folder.mkdir(parents=True, exist_ok=True)
                value = np.full((32, 32, 3), 10 * severity + 50 * k + int(path.stem.split("_")[1]), np.uint8)
                Image.fromarray(value).save(folder / f"{path.stem}.JPEG", format="PNG")
    return root


def test_release_folders_are_matched_by_class_and_file_name(tmp_path: Path) -> None:
    clean = load_dataset("imagefolder", "test", data_root=_clean_tree(tmp_path / "data"))
    release = _release_tree(tmp_path / "download" / "Tiny-ImageNet-C", clean)  # nested, as an archive extracts
    corrupted = load_corrupted(clean, corruptions=["snow", "fog"], severities=[2, 5], n_per_class=2, seed=3,
                               release_dir=tmp_path / "download")
    indices = stratified_indices(clean.labels, 2, seed=3)
    assert np.array_equal(corrupted.indices, indices) and np.array_equal(corrupted.labels, clean.labels[indices])
    assert corrupted.source == f"release {release}" and corrupted.params == "cifar"  # 32-pixel files
    files = sorted(Path(clean.source).glob("*/*.png"))
    numbers = np.array([int(files[i].stem.split("_")[1]) for i in indices])
    assert np.array_equal(corrupted.images("snow", 5)[:, 0, 0, 0], 10 * 5 + 50 * 1 + numbers)
    assert np.array_equal(corrupted.images("fog", 2)[:, 7, 3, 2], 10 * 2 + numbers)
    again = load_corrupted(clean, corruptions=["snow", "fog"], severities=[2, 5], n_per_class=2, seed=3,
                           release_dir=release)
    assert again.fingerprint == corrupted.fingerprint
    other = load_corrupted(clean, corruptions=["snow", "fog"], severities=[2, 5], n_per_class=2, seed=4,
                           release_dir=release)
    assert other.fingerprint != corrupted.fingerprint


def test_release_folders_with_other_classes_or_missing_images_are_refused(tmp_path: Path) -> None:
    clean = load_dataset("imagefolder", "test", data_root=_clean_tree(tmp_path / "data"))
    wrong = _release_tree(tmp_path / "wrong", clean, corruptions=("fog",), classes=("n07",))
    with pytest.raises(DataFormatError) as error:
        load_corrupted(clean, corruptions=["fog"], severities=[1], release_dir=wrong)
    message = str(error.value)
    assert str(wrong / "fog" / "1") in message and "--release-dir" in message and "missing ['n00'" in message
    assert len(message.splitlines()) == 1
    release = _release_tree(tmp_path / "rel", clean, corruptions=("fog",))
    with pytest.raises(DataNotFoundError, match=r"lacks snow/1/"):
        load_corrupted(clean, corruptions=["snow"], severities=[1], release_dir=release)
    (release / "fog" / "3" / "n01" / "val_4.JPEG").unlink()
    with pytest.raises(DataNotFoundError, match=r"n01 has no image named like val_4.*--release-dir"):
        load_corrupted(clean, corruptions=["fog"], severities=[3], release_dir=release)
    memory = clean_set(9, 40)  # not read from a folder: nothing to match file names with
    with pytest.raises(DataFormatError, match="--dataset imagefolder --data-root"):
        load_corrupted(memory, corruptions=["fog"], severities=[1], release_dir=release)
