"""CIFAR-C releases (reading, finding, downloading), generation in the release layout, and load_corrupted."""

from __future__ import annotations

import hashlib
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest

from moo_compress import paths
from moo_compress.data import (
    ArrayDataset,
    corruption_cache,
    corruption_jobs,
    release_generation,
    releases,
    stratified_indices,
)
from moo_compress.data.corrupted_loading import load_corrupted
from moo_compress.data.corruptions import corrupt
from moo_compress.data.release_download import download_release
from moo_compress.data.release_generation import generate_release
from moo_compress.data.releases import MANIFEST, find_release, open_release
from moo_compress.errors import ConfigError, DataFormatError, DataNotFoundError, UnknownNameError
from moo_compress.fileio import sha256_file, stable_hash

N = 12  # images per severity block of the synthetic releases


@pytest.fixture(autouse=True)
def _no_data_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    """A real CIFAR-10-C under the user's $MOO_COMPRESS_DATA must not leak into these tests."""
    monkeypatch.delenv(paths.DATA_ENV, raising=False)


def tiny_clean(count: int = 30, classes: int = 3, seed: int = 0, name: str = "cifar10") -> ArrayDataset:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(count, 32, 32, 3), dtype=np.uint8)
    labels = np.arange(count, dtype=np.int64) % classes
    return ArrayDataset(images, labels, tuple(f"c{i}" for i in range(classes)), name, "test", "memory",
                        stable_hash(["tiny", count, classes, seed]))


def write_release(root: Path, corruptions: tuple[str, ...] = ("gaussian_noise", "fog"), n: int = N) -> np.ndarray:
    """An official-format release: pixel value = 10 * severity + image index, labels = index % 3."""
    root.mkdir(parents=True, exist_ok=True)
    labels = np.arange(n) % 3
    np.save(root / "labels.npy", np.tile(labels, 5).astype(np.uint8))
    for k, name in enumerate(corruptions):
        data = np.empty((5 * n, 32, 32, 3), np.uint8)
        for s in range(1, 6):
            data[(s - 1) * n: s * n] = (10 * s + np.arange(n) + 100 * k)[:, None, None, None]
        np.save(root / f"{name}.npy", data)
    return labels


# ---------------------------------------------------------------------------------------- reading


def test_open_official_release(tmp_path: Path) -> None:
    labels = write_release(tmp_path / "CIFAR-10-C")
    release = open_release(tmp_path / "CIFAR-10-C", corruptions=["gaussian_noise"])
    assert release.severities == (1, 2, 3, 4, 5) and len(release) == N and release.manifest is None
    assert release.corruptions == ("gaussian_noise", "fog")
    assert np.array_equal(release.labels, labels) and release.labels.dtype == np.int64
    block = release.images("fog", 3)
    assert block.shape == (N, 32, 32, 3) and np.array_equal(block[:, 0, 0, 0], 130 + np.arange(N))
    assert np.array_equal(release.images("gaussian_noise", 5, np.array([2, 7]))[:, 0, 0, 0], [52, 57])


def test_release_errors(tmp_path: Path) -> None:
    root = tmp_path / "rel"
    with pytest.raises(DataNotFoundError, match="does not exist"):
        open_release(root)
    write_release(root)
    with pytest.raises(DataNotFoundError, match="no snow.npy"):
        open_release(root, corruptions=["snow"])
    with pytest.raises(UnknownNameError, match="did you mean 'fog'"):
        open_release(root).array("fogg")

    np.save(root / "snow.npy", np.zeros((5 * N, 32, 32, 3), np.float32))
    with pytest.raises(DataFormatError, match="float32.*expected uint8"):
        open_release(root, corruptions=["snow"])
    np.save(root / "snow.npy", np.zeros((5 * N, 32, 32), np.uint8))
    with pytest.raises(DataFormatError, match="shape"):
        open_release(root, corruptions=["snow"])
    np.save(root / "snow.npy", np.zeros((4 * N, 32, 32, 3), np.uint8))
    with pytest.raises(DataFormatError, match="shape"):
        open_release(root, corruptions=["snow"])

    data = (root / "fog.npy").read_bytes()
    (root / "fog.npy").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataFormatError, match="truncated"):
        open_release(root, corruptions=["fog"])
    (root / "fog.npy").write_bytes(b"not a numpy file at all")
    with pytest.raises(DataFormatError, match="not a readable .npy"):
        open_release(root, corruptions=["fog"])

    np.save(root / "labels.npy", np.arange(5 * N).astype(np.uint8))
    with pytest.raises(DataFormatError, match="repeated"):
        open_release(root)
    np.save(root / "labels.npy", np.zeros(5 * N, np.float32))
    with pytest.raises(DataFormatError, match="integers"):
        open_release(root)
    (root / "labels.npy").unlink()
    with pytest.raises(DataNotFoundError, match="labels.npy"):
        open_release(root)


def test_find_release(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert find_release("cifar10") is None
    data = tmp_path / "data"
    write_release(data / "CIFAR-100-C")
    write_release(data / "cifar10-c" / "CIFAR-10-C")  # an archive extracted into its own folder
    monkeypatch.setenv(paths.DATA_ENV, str(data))
    assert find_release("cifar10") == data / "cifar10-c" / "CIFAR-10-C"
    assert find_release("cifar100") == data / "CIFAR-100-C"
    assert find_release("cifar10", data / "cifar10-c") == data / "cifar10-c" / "CIFAR-10-C"
    with pytest.raises(DataNotFoundError):
        find_release("cifar10", tmp_path / "missing")


# ---------------------------------------------------------------------------------------- downloading


def _archive(tmp_path: Path) -> tuple[Path, str]:
    write_release(tmp_path / "src" / "CIFAR-10-C", n=4)
    archive = tmp_path / "CIFAR-10-C.tar"
    with tarfile.open(archive, "w") as tar:
        tar.add(tmp_path / "src" / "CIFAR-10-C", arcname="CIFAR-10-C")
    return archive, hashlib.md5(archive.read_bytes()).hexdigest()


def test_download_release_checks_md5(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    archive, md5 = _archive(tmp_path)
    with pytest.raises(DataNotFoundError, match="MOO_COMPRESS_OFFLINE"):
        download_release("cifar10", tmp_path / "out", url=archive.as_uri(), md5=md5, progress=False)
    monkeypatch.delenv("MOO_COMPRESS_OFFLINE")
    with pytest.raises(DataFormatError, match="MD5"):
        download_release("cifar10", tmp_path / "bad", url=archive.as_uri(), md5="0" * 32, progress=False)
    assert not (tmp_path / "bad" / "CIFAR-10-C").exists() and not (tmp_path / "bad" / "CIFAR-10-C.tar").exists()
    folder = download_release("cifar10", tmp_path / "out", url=archive.as_uri(), md5=md5, progress=False)
    assert folder == tmp_path / "out" / "CIFAR-10-C"
    assert open_release(folder).corruptions == ("gaussian_noise", "fog")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["CIFAR-10-C"]  # archive and scratch removed


def test_release_addresses() -> None:
    assert releases.RELEASES["cifar10"].url == "https://zenodo.org/records/2535967/files/CIFAR-10-C.tar?download=1"
    assert releases.RELEASES["cifar100"].md5 == "11f0ed0f1191edbf9fa23466ae6021d3"


# ---------------------------------------------------------------------------------------- generating


def test_generate_release_layout(tmp_path: Path) -> None:
    clean = tiny_clean(25)
    out = generate_release(clean, tmp_path / "gen", corruptions=["contrast", "shot_noise"], seed=3, workers=1,
                           progress=False)
    release = open_release(out, corruptions=["shot_noise", "contrast"])
    assert release.corruptions == ("shot_noise", "contrast") and release.severities == (1, 2, 3, 4, 5)
    assert np.load(out / "labels.npy").dtype == np.uint8
    assert np.array_equal(np.load(out / "labels.npy"), np.tile(clean.labels, 5))
    assert np.load(out / "shot_noise.npy").shape == (125, 32, 32, 3)
    for s in range(1, 6):
        assert np.array_equal(release.images("shot_noise", s), corrupt(clean.images, "shot_noise", s, seed=3))
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["complete"] == ["shot_noise", "contrast"] and manifest["seed"] == 3
    assert not list(out.glob(".*"))  # no temporary files left


@pytest.mark.slow
def test_generate_release_with_workers_equals_in_process(tmp_path: Path) -> None:
    clean = tiny_clean(20)  # one chunk per severity: the two workers get one each
    one = generate_release(clean, tmp_path / "one", corruptions=["motion_blur"], severities=[2, 5], workers=1,
                           progress=False)
    two = generate_release(clean, tmp_path / "two", corruptions=["motion_blur"], severities=[2, 5], workers=2,
                           progress=False)
    assert (one / "motion_blur.npy").read_bytes() == (two / "motion_blur.npy").read_bytes()
    assert open_release(two).severities == (2, 5)


def test_interrupted_generation_leaves_no_complete_looking_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clean = tiny_clean(20)
    real = corruption_jobs.corrupt_into
    calls = []

    def flaky(out: np.ndarray, images: np.ndarray, name: str, severity: int, **kwargs: object) -> None:
        calls.append((name, severity))
        if name == "brightness" and severity == 3:  # fog comes first in the reference order
            raise KeyboardInterrupt
        real(out, images, name, severity, **kwargs)

    monkeypatch.setattr(corruption_jobs, "corrupt_into", flaky)
    out = tmp_path / "gen"
    with pytest.raises(KeyboardInterrupt):
        generate_release(clean, out, corruptions=["brightness", "fog"], workers=1, progress=False)
    assert (out / "fog.npy").is_file() and not (out / "brightness.npy").exists()
    assert not list(out.glob(".*")), "temporary files must be removed"
    assert json.loads((out / MANIFEST).read_text())["complete"] == ["fog"]

    calls.clear()

    def counting(out: np.ndarray, images: np.ndarray, name: str, severity: int, **kwargs: object) -> None:
        calls.append((name, severity))
        real(out, images, name, severity, **kwargs)

    monkeypatch.setattr(corruption_jobs, "corrupt_into", counting)
    generate_release(clean, out, corruptions=["brightness", "fog"], workers=1, progress=False)
    assert {name for name, _ in calls} == {"brightness"}  # fog was complete and is skipped
    assert open_release(out, corruptions=["brightness", "fog"]).corruptions == ("fog", "brightness")
    assert np.array_equal(open_release(out).images("brightness", 3), corrupt(clean.images, "brightness", 3))


# ---------------------------------------------------------------------------------------- load_corrupted


def test_load_corrupted_from_release_draws_the_subset_on_release_labels(tmp_path: Path) -> None:
    labels = write_release(tmp_path / "rel", corruptions=("gaussian_noise", "fog", "snow"))
    clean = tiny_clean(N, seed=1)
    clean = ArrayDataset(clean.images, clean.labels[::-1].copy(), clean.classes, "cifar10", "test", "memory",
                         clean.fingerprint)  # the clean set's order does not matter for a release
    subset = load_corrupted(clean, corruptions=["fog", "gaussian_noise"], severities=[2, 4], n_per_class=2, seed=5,
                            release_dir=tmp_path / "rel")
    expected = stratified_indices(labels, 2, seed=5)
    assert np.array_equal(subset.indices, expected) and np.array_equal(subset.labels, labels[expected])
    assert subset.keys() == [("gaussian_noise", 2), ("gaussian_noise", 4), ("fog", 2), ("fog", 4)]
    assert np.array_equal(subset.images("fog", 4)[:, 0, 0, 0], 10 * 4 + 100 * 1 + expected)
    assert subset.source.startswith("release")
    again = load_corrupted(clean, corruptions=["fog", "gaussian_noise"], severities=[2, 4], n_per_class=2, seed=5,
                           release_dir=tmp_path / "rel")
    assert again.fingerprint == subset.fingerprint
    other = load_corrupted(clean, corruptions=["fog", "gaussian_noise"], severities=[2, 4], n_per_class=2, seed=6,
                           release_dir=tmp_path / "rel")
    assert other.fingerprint != subset.fingerprint
    full = load_corrupted(clean, corruptions=["snow"], release_dir=tmp_path / "rel")
    assert len(full) == N and isinstance(full.images("snow", 1), np.memmap)
    with pytest.raises(ConfigError, match="not \\('snow', 6\\)"):
        full.images("snow", 6)


def test_load_corrupted_finds_a_release_under_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_release(tmp_path / "data" / "CIFAR-10-C")
    monkeypatch.setenv(paths.DATA_ENV, str(tmp_path / "data"))
    found = load_corrupted(tiny_clean(N), corruptions=["fog"])
    assert found.source == f"release {tmp_path / 'data' / 'CIFAR-10-C'}"
    with pytest.raises(DataNotFoundError, match="no snow.npy"):
        load_corrupted(tiny_clean(N), corruptions=["snow"])


def test_load_corrupted_generates_only_what_is_asked_and_caches_it(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    clean = tiny_clean(30)
    first = load_corrupted(clean, corruptions=["impulse_noise", "pixelate"], severities=[1, 5], n_per_class=4, seed=2,
                           cache_dir=tmp_path)
    indices = stratified_indices(clean.labels, 4, seed=2)
    assert np.array_equal(first.indices, indices) and np.array_equal(first.labels, clean.labels[indices])
    for c, s in first.keys():
        assert np.array_equal(first.images(c, s), corrupt(clean.images[indices], c, s, seed=2))
    folder = Path(first.source.split(" ", 1)[1])
    assert sorted(p.name for p in folder.glob("*.npy")) == [
        "impulse_noise-1.npy", "impulse_noise-5.npy", "pixelate-1.npy", "pixelate-5.npy"]

    def must_not_run(*args: object, **kwargs: object) -> None:
        raise AssertionError("cached images were regenerated")

    monkeypatch.setattr(corruption_cache, "run_jobs", must_not_run)
    again = load_corrupted(clean, corruptions=["impulse_noise", "pixelate"], severities=[1, 5], n_per_class=4, seed=2,
                           cache_dir=tmp_path)
    assert again.fingerprint == first.fingerprint
    assert all(np.array_equal(again.images(*k), first.images(*k)) for k in first.keys())
    fewer = load_corrupted(clean, corruptions=["pixelate"], severities=[5], n_per_class=4, seed=2, cache_dir=tmp_path)
    assert fewer.fingerprint != first.fingerprint  # a different set of images, served from the same cache

    monkeypatch.undo()
    monkeypatch.delenv(paths.DATA_ENV, raising=False)
    other_seed = load_corrupted(clean, corruptions=["pixelate"], severities=[5], n_per_class=4, seed=3,
                                cache_dir=tmp_path)
    other_clean = load_corrupted(tiny_clean(30, seed=9), corruptions=["pixelate"], severities=[5], n_per_class=4,
                                 seed=2, cache_dir=tmp_path)
    assert len({fewer.fingerprint, other_seed.fingerprint, other_clean.fingerprint}) == 3


def test_load_corrupted_rejects_bad_arguments(tmp_path: Path) -> None:
    clean = tiny_clean(30)
    with pytest.raises(UnknownNameError):
        load_corrupted(clean, corruptions=["fogg"], cache_dir=tmp_path)
    with pytest.raises(ConfigError, match="severity"):
        load_corrupted(clean, severities=[0], cache_dir=tmp_path)
    with pytest.raises(ConfigError, match="n_per_class"):
        load_corrupted(clean, n_per_class=0, cache_dir=tmp_path)
    with pytest.raises(ConfigError, match="fewer than the 11 per class"):
        load_corrupted(clean, n_per_class=11, cache_dir=tmp_path)


def test_generated_file_altered_on_disk_is_detected_and_regenerated(tmp_path: Path) -> None:
    clean = tiny_clean(30)
    kwargs = dict(corruptions=["pixelate"], severities=[2], n_per_class=4, seed=1, cache_dir=tmp_path)
    first = load_corrupted(clean, **kwargs)
    expected = first.images("pixelate", 2).copy()
    folder = Path(first.source.split(" ", 1)[1])
    path = folder / "pixelate-2.npy"
    assert (folder / "pixelate-2.npy.sha256").read_text() == sha256_file(path)
    del first
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF  # one altered pixel, same size: a name-and-size check would reuse it
    path.write_bytes(bytes(data))
    with pytest.warns(RuntimeWarning, match="does not match the digest"):
        again = load_corrupted(clean, **kwargs)
    assert np.array_equal(again.images("pixelate", 2), expected)
    assert (folder / "pixelate-2.npy.sha256").read_text() == sha256_file(path)


def test_generate_release_rerun_regenerates_an_altered_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clean = tiny_clean(12)
    out = generate_release(clean, tmp_path / "gen", corruptions=["contrast", "fog"], severities=[1], workers=1,
                           progress=False)
    good = np.load(out / "fog.npy").copy()
    data = bytearray((out / "fog.npy").read_bytes())
    data[-1] ^= 0xFF
    (out / "fog.npy").write_bytes(bytes(data))
    done: list[str] = []
    real = release_generation.run_jobs
    monkeypatch.setattr(release_generation, "run_jobs", lambda images, jobs, **kw: (done.extend(j.name for j in jobs),
                                                                                     real(images, jobs, **kw)))
    generate_release(clean, out, corruptions=["contrast", "fog"], severities=[1], workers=1, progress=False)
    assert done == ["fog"]  # the untouched file was kept, the altered one written again
    assert np.array_equal(np.load(out / "fog.npy"), good)


def test_a_generated_file_appears_with_its_digest_already_written(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    # Two runs sharing a cache: one that found a generated file before its digest took it for a stale
    # file and deleted it under the other run (seen in CI). The digest must exist whenever the file does.
    real = corruption_cache.os.replace
    seen: list[bool] = []

    def replace(src: object, dst: object) -> None:
        dst = Path(dst)
        if dst.suffix == ".npy":
            seen.append(corruption_cache.digest_path(dst).read_text() == sha256_file(Path(src)))
        real(src, dst)

    monkeypatch.setattr(corruption_cache.os, "replace", replace)
    load_corrupted(tiny_clean(30), corruptions=["contrast", "fog"], severities=[1], n_per_class=2,
                   cache_dir=tmp_path)
    assert seen == [True, True]
