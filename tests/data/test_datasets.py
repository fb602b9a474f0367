"""ImageFolder loading, the decoded-array cache, data-root resolution and stratified subsets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from moo_compress.data import (
    balanced_order,
    datasets,
    load_dataset,
    load_image_folder,
    resolve_data_root,
    stratified_indices,
)
from moo_compress.errors import ConfigError, DataFormatError, DataNotFoundError, UnknownNameError
from tests.conftest import make_image_folder


def test_image_folder_loads_uint8_nhwc_in_sorted_class_order(tiny_folder: Path) -> None:
    ds = load_image_folder(tiny_folder, "test", name="tiny")
    assert ds.images.shape == (12, 32, 32, 3) and ds.images.dtype == np.uint8
    assert ds.classes == ("class0", "class1", "class2")
    assert ds.labels.tolist() == [0] * 4 + [1] * 4 + [2] * 4
    expected = np.asarray(Image.open(tiny_folder / "test" / "class1" / "0002.png").convert("RGB"))
    np.testing.assert_array_equal(ds.images[6], expected)


def test_second_load_is_served_from_cache(tiny_folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = load_image_folder(tiny_folder, "train", name="tiny")

    def fail(path: Path) -> np.ndarray:
        raise AssertionError(f"decoded {path} again")

    monkeypatch.setattr(datasets, "_decode", fail)
    second = load_image_folder(tiny_folder, "train", name="tiny")
    np.testing.assert_array_equal(first.images, second.images)
    assert first.fingerprint == second.fingerprint


def test_changed_source_invalidates_cache(tiny_folder: Path) -> None:
    before = load_image_folder(tiny_folder, "test", name="tiny")
    target = tiny_folder / "test" / "class0" / "0000.png"
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(target)
    after = load_image_folder(tiny_folder, "test", name="tiny")
    assert after.fingerprint != before.fingerprint
    assert after.images[0].max() == 0


def test_mixed_image_sizes_are_rejected(tiny_folder: Path) -> None:
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(tiny_folder / "test" / "class0" / "odd.png")
    with pytest.raises(DataFormatError, match="differ in size"):
        load_image_folder(tiny_folder, "test", name="tiny")


def test_subset_fingerprint_names_the_indices(tiny_folder: Path) -> None:
    ds = load_image_folder(tiny_folder, "test", name="tiny")
    a, b = ds.subset(np.array([0, 5])), ds.subset(np.array([0, 6]))
    assert len(a) == 2 and a.fingerprint != b.fingerprint != ds.fingerprint
    np.testing.assert_array_equal(a.images[1], ds.images[5])


def test_data_root_is_an_image_folder_or_torchvision_root(tmp_path: Path) -> None:
    tree = make_image_folder(tmp_path / "cifar10-jpeg", classes=10, per_split={"train": 1, "test": 1})
    assert resolve_data_root("cifar10", tree) == (tree, "imagefolder")
    (tmp_path / "tv" / "cifar-10-batches-py").mkdir(parents=True)
    assert resolve_data_root("cifar10", tmp_path / "tv") == (tmp_path / "tv", "torchvision")
    with pytest.raises(DataNotFoundError, match="is not an ImageFolder tree"):
        resolve_data_root("cifar10", tmp_path)
    with pytest.raises(DataNotFoundError, match="does not exist"):
        resolve_data_root("cifar10", tmp_path / "missing")


def test_env_folder_is_searched_by_dataset_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_image_folder(tmp_path / "cifar100-jpeg", classes=2, per_split={"test": 1, "train": 1})
    monkeypatch.setenv("MOO_COMPRESS_DATA", str(tmp_path))
    with pytest.raises(DataNotFoundError, match=r"no cifar10 dataset under \$MOO_COMPRESS_DATA"):
        resolve_data_root("cifar10", None)  # cifar100-jpeg must not match cifar10
    tree = make_image_folder(tmp_path / "cifar10-jpeg", classes=10, per_split={"test": 2, "train": 1})
    assert resolve_data_root("cifar10", None) == (tree, "imagefolder")
    ds = load_dataset("cifar10", "test")
    assert len(ds) == 20 and ds.num_classes == 10


def test_wrong_class_count_is_rejected(tiny_folder: Path) -> None:
    with pytest.raises(DataFormatError, match="3 class folders but cifar10 has 10"):
        load_dataset("cifar10", "test", data_root=tiny_folder)


def test_missing_torchvision_data_offline_says_where_it_looked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MOO_COMPRESS_DATA", raising=False)
    monkeypatch.setenv("MOO_COMPRESS_CACHE", str(tmp_path))
    with pytest.raises(DataNotFoundError) as info:
        load_dataset("cifar10", "test", download=False)
    message = str(info.value)
    assert str(tmp_path / "data" / "cifar10") in message and "--data-root" in message


def test_bad_names_are_rejected(tiny_folder: Path) -> None:
    with pytest.raises(UnknownNameError, match="did you mean 'cifar10'"):
        load_dataset("cifar1O", "test", data_root=tiny_folder)
    with pytest.raises(ConfigError, match="unknown split"):
        load_dataset("cifar10", "val", data_root=tiny_folder)


def test_stratified_indices_are_balanced_sorted_and_seeded() -> None:
    labels = np.repeat(np.arange(5), 20)
    idx = stratified_indices(labels, 3, seed=1)
    assert np.all(np.diff(idx) > 0)
    assert np.bincount(labels[idx]).tolist() == [3] * 5
    np.testing.assert_array_equal(idx, stratified_indices(labels, 3, seed=1))
    assert not np.array_equal(idx, stratified_indices(labels, 3, seed=2))
    with pytest.raises(ConfigError, match="fewer than the 21"):
        stratified_indices(labels, 21)
    with pytest.raises(ConfigError):
        stratified_indices(labels, 0)


def test_balanced_order_every_prefix_is_balanced_and_classes_are_mixed() -> None:
    labels = np.repeat(np.arange(10), 500)  # class-sorted, as an ImageFolder tree loads
    order = balanced_order(labels, 5000, seed=3)
    assert np.unique(order).size == 5000
    for m in (10, 37, 512, 1000, 4999):
        counts = np.bincount(labels[order[:m]], minlength=10)
        assert counts.max() - counts.min() <= 1, (m, counts)
    # batches mix the classes: no run of equal labels longer than 2 (two adjacent rounds)
    runs = np.diff(np.flatnonzero(np.diff(labels[order]) != 0))
    assert runs.max() <= 2
    np.testing.assert_array_equal(order, balanced_order(labels, 5000, seed=3))
    assert not np.array_equal(order[:100], balanced_order(labels, 5000, seed=4)[:100])


def test_balanced_order_pool_size_never_changes_the_first_images() -> None:
    labels = np.repeat(np.arange(10), 600)
    small, large = balanced_order(labels, 520, seed=0), balanced_order(labels, 5000, seed=0)
    np.testing.assert_array_equal(small, large[:520])


def test_balanced_order_imbalanced_classes_and_errors() -> None:
    labels = np.concatenate([np.zeros(3, int), np.ones(50, int), np.full(50, 2)])
    order = balanced_order(labels, 60, seed=0)
    counts = np.bincount(labels[order])
    assert counts.tolist() == [3, 29, 28] or counts.tolist() == [3, 28, 29]
    assert np.bincount(labels[order[:9]]).tolist() == [3, 3, 3]
    with pytest.raises(ConfigError, match="at least 3"):
        balanced_order(labels, 2)
    with pytest.raises(ConfigError, match="at most 103"):
        balanced_order(labels, 104)


@pytest.mark.shared_data
def test_real_test_set_loads_then_reloads_from_cache(cifar10_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = load_dataset("cifar10", "test", data_root=cifar10_root)
    assert first.images.shape == (10000, 32, 32, 3)
    assert np.bincount(first.labels).tolist() == [1000] * 10
    monkeypatch.setattr(datasets, "_decode", lambda path: pytest.fail(f"decoded {path} again"))
    again = load_dataset("cifar10", "test", data_root=cifar10_root)
    assert isinstance(again.images, np.memmap)  # the reload maps the cached array instead of decoding
    assert again.fingerprint == first.fingerprint
