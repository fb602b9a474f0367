"""Parameter sets (cifar, tinyimagenet, imagenet): the registry, the choice by image size, the override,
and what adapts to sizes other than a set's native one (non-square images included)."""

from __future__ import annotations

import numpy as np
import pytest

from moo_compress.data.corruptions import (
    ALL_CORRUPTIONS,
    PARAM_SETS,
    PARAMS,
    api,
    base,
    block_size,
    corrupt,
    corrupt_into,
    filters,
    get_param_set,
    list_param_sets,
    param_set_for_size,
    params_fingerprint,
    resolve_param_set,
    textures,
)
from moo_compress.data.corruptions.blur import shuffle_sources
from moo_compress.errors import ConfigError, DataFormatError, UnknownNameError
from tests.data.synthetic import natural_images

# ---------------------------------------------------------------------------------------- the registry


def test_three_sets_with_their_reference_numbers() -> None:
    assert list_param_sets() == ["cifar", "tinyimagenet", "imagenet"]
    assert [PARAM_SETS[n].size for n in list_param_sets()] == [32, 64, 224]
    cifar, tiny, imagenet = (get_param_set(n) for n in list_param_sets())
    assert cifar.params == PARAMS  # the CIFAR table is the one the CIFAR tests pin
    for pset in (tiny, imagenet):
        assert tuple(pset.params) == ALL_CORRUPTIONS
        assert all(len(spec.params) == 5 for spec in pset.specs)
        assert [s.family for s in pset.specs] == [s.family for s in cifar.specs]
    # a few numbers read off make_tinyimagenet_c.py and make_imagenet_c.py
    assert tiny.param("gaussian_noise", 5) == 0.18 and imagenet.param("gaussian_noise", 5) == 0.38
    assert tiny.param("glass_blur", 4) == (0.7, 2, 1) and imagenet.param("glass_blur", 5) == (1.5, 4, 2)
    assert imagenet.param("zoom_blur", 5) == (1, 1.31, 0.03) and imagenet.param("jpeg_compression", 5) == 7
    assert tiny.param("elastic_transform", 5) == pytest.approx((64 * 0.16, 64 * 0.03, 64 * 0.02))
    assert imagenet.param("elastic_transform", 1) == pytest.approx((488, 170.8, 24.4))  # 244, as written
    assert (cifar.frost_scale, tiny.frost_scale, imagenet.frost_scale) == (0.2, 0.3, 1.0)


def test_unknown_set_lists_the_valid_names() -> None:
    with pytest.raises(UnknownNameError, match=r"did you mean 'imagenet'.*valid: cifar, tinyimagenet, imagenet"):
        get_param_set("imagenett")
    with pytest.raises(UnknownNameError, match="valid: cifar"):
        corrupt(natural_images(1, 32), "fog", 1, params="svhn")
    with pytest.raises(ConfigError, match="parameter set name"):
        resolve_param_set(224, 224, 224)  # type: ignore[arg-type]


def test_fingerprints_differ_between_sets_and_cifar_keeps_its_old_one() -> None:
    prints = {get_param_set(n).fingerprint() for n in list_param_sets()}
    assert len(prints) == 3
    assert get_param_set("cifar").fingerprint() == params_fingerprint()  # generated caches stay valid


# ---------------------------------------------------------------------------------------- the choice by size


@pytest.mark.parametrize(
    ("shape", "expected"),
    [((32, 32), "cifar"), ((16, 16), "cifar"), ((45, 45), "cifar"), ((46, 46), "tinyimagenet"),
     ((64, 64), "tinyimagenet"), ((96, 96), "tinyimagenet"), ((119, 119), "tinyimagenet"), ((120, 120), "imagenet"),
     ((160, 160), "imagenet"), ((224, 224), "imagenet"), ((256, 256), "imagenet"), ((32, 64), "cifar"),
     ((300, 100), "tinyimagenet")],
)
def test_the_set_follows_the_shorter_side(shape: tuple[int, int], expected: str) -> None:
    assert param_set_for_size(*shape).name == expected
    assert resolve_param_set(None, *shape).name == expected


def test_default_and_explicit_sets(monkeypatch: pytest.MonkeyPatch) -> None:
    images = natural_images(3, 64, seed=1)
    by_size = corrupt(images, "contrast", 5)
    assert np.array_equal(by_size, corrupt(images, "contrast", 5, params="tinyimagenet"))
    assert np.array_equal(by_size, corrupt(images, "contrast", 5, params=get_param_set("tinyimagenet")))
    as_cifar = corrupt(images, "contrast", 5, params="cifar")
    assert not np.array_equal(by_size, as_cifar)
    # contrast: (x - mean) c + mean with the chosen set's c
    x = images / 255.0
    means = x.mean(axis=(1, 2), keepdims=True)
    expected = np.uint8(np.clip((x - means) * get_param_set("cifar").param("contrast", 5) + means, 0, 1) * 255)
    assert np.array_equal(as_cifar, expected)


def test_cifar_images_default_to_the_cifar_set() -> None:
    images = natural_images(4, 32, seed=2)
    for name in ("fog", "glass_blur", "frost", "elastic_transform"):
        assert np.array_equal(corrupt(images, name, 4, seed=1), corrupt(images, name, 4, seed=1, params="cifar"))


# ---------------------------------------------------------------------------------------- any size


@pytest.mark.parametrize("shape", [(160, 160), (256, 256), (48, 80), (100, 36)])
@pytest.mark.parametrize("name", ALL_CORRUPTIONS)
def test_every_corruption_runs_at_other_sizes(name: str, shape: tuple[int, int]) -> None:
    images = natural_images(2, shape, seed=3)
    params = "imagenet" if min(shape) >= 120 else None
    out = corrupt(images, name, 5, seed=1, params=params)
    assert out.shape == images.shape and out.dtype == np.uint8
    assert np.array_equal(out, corrupt(images, name, 5, seed=1, params=params))
    assert not np.array_equal(out, images)


def test_images_too_small_to_corrupt() -> None:
    with pytest.raises(DataFormatError, match="at least 16 x 16"):
        corrupt(np.zeros((1, 15, 40, 3), np.uint8), "fog", 1)
    corrupt(np.zeros((1, 16, 40, 3), np.uint8), "glass_blur", 5, params="imagenet")  # delta 4 still fits


def test_blocks_hold_as_many_pixels_as_1000_cifar_images(monkeypatch: pytest.MonkeyPatch) -> None:
    assert (block_size(32, 32), block_size(64, 64), block_size(224, 224), block_size(1000, 1000)) == (1000, 250, 20, 1)
    monkeypatch.setattr(api, "BLOCK_SIZE", 8)  # 8 CIFAR images = 2 images of 64 x 64
    images = natural_images(7, 64, seed=4)
    for name in ("shot_noise", "glass_blur", "fog"):
        whole = corrupt(images, name, 3, seed=5)
        parts = np.empty_like(images)
        for start in range(0, 7, 4):
            corrupt_into(parts[start:start + 4], images[start:start + 4], name, 3, seed=5, first_block=start // 2)
        assert np.array_equal(whole, parts)


def test_elastic_parameters_scale_with_the_shorter_side() -> None:
    tiny = get_param_set("tinyimagenet")
    native = tiny.param("elastic_transform", 3)
    assert tiny.hook_param("elastic_transform", 3, 64, 64) == native
    assert tiny.hook_param("elastic_transform", 3, 96, 128) == pytest.approx(tuple(1.5 * v for v in native))
    assert tiny.hook_param("frost", 2, 64, 64) == (0.9, 0.4, 0.3)
    assert tiny.hook_param("fog", 2, 80, 80) == tiny.param("fog", 2)


def test_fog_fractal_is_the_next_power_of_two_cropped() -> None:
    from moo_compress.data.corruptions import fractal

    images = np.full((2, 40, 70, 3), 100, np.uint8)
    strength, decay = get_param_set("tinyimagenet").param("fog", 3)
    rng = base.block_rng(0, "fog", 3, 0)
    plasma = fractal.plasma_fractal(2, rng, mapsize=128, wibble_decay=decay)[:, :40, :70]
    x = images / 255.0 + strength * plasma[..., None]
    peak = 100 / 255
    expected = np.uint8(np.clip(x * peak / (peak + strength), 0, 1) * 255)
    assert np.array_equal(corrupt(images, "fog", 3, seed=0, params="tinyimagenet"), expected)


def test_frost_textures_grow_for_images_larger_than_them() -> None:
    for height, width in ((224, 224), (320, 240), (400, 700)):
        crops = textures.frost_textures(1.0, height, width)
        assert all(t.shape[0] > height and t.shape[1] > width for t in crops)
    native = textures.frost_textures(1.0, 224, 224)
    assert [t.shape[:2] for t in native] == [t.shape[:2] for t in textures._originals()]  # ImageNet-C: no resize
    grown = textures.frost_textures(1.0, 320, 320)[1]  # frost2 is 315 x 560: 1.1 x 320 / 315 larger
    assert grown.shape[:2] == (int(np.ceil(315 * 1.1 * 320 / 315)), int(np.ceil(560 * 1.1 * 320 / 315)))
    black = np.zeros((2, 320, 320, 3), np.uint8)
    assert corrupt(black, "frost", 1, params="imagenet").mean() > 10


def test_large_gaussian_kernels_equal_scipy() -> None:
    from scipy import ndimage

    noise = np.random.default_rng(0).uniform(-1, 1, size=(2, 50, 70))
    for sigma in (12.0, 171.0):  # a kernel reaching past the image: scipy folds it by the border mode
        expected = np.stack([ndimage.gaussian_filter(n, sigma, mode="reflect", truncate=3) for n in noise])
        np.testing.assert_allclose(filters.gaussian(noise, sigma, mode="reflect", truncate=3), expected, atol=1e-12)


# ---------------------------------------------------------------------------------------- glass blur's scan


@pytest.mark.parametrize(("shape", "pset", "severity"),
                         [((40, 52), "tinyimagenet", 5), ((36, 30), "imagenet", 5), ((30, 30), "imagenet", 3)])
def test_glass_blur_equals_the_sequential_scan_for_larger_shifts(shape: tuple[int, int], pset: str,
                                                                 severity: int) -> None:
    """With delta > 1 a pixel can copy a neighbour the scan has already changed; the reference's loop
    (copying ``x[h + dy, w + dx]`` into ``x[h, w]``, rows then columns, descending) is the judge."""
    sigma, delta, iterations = get_param_set(pset).param("glass_blur", severity)
    assert delta > 1
    height, width = shape
    batch = natural_images(3, shape, seed=2)
    rng = base.block_rng(7, "glass_blur", severity, 0)
    rows, cols = np.arange(height - delta, delta, -1), np.arange(width - delta, delta, -1)
    shifts = [rng.integers(-delta, delta, size=(2, len(batch), rows.size, cols.size)) for _ in range(iterations)]
    expected = []
    for n, image in enumerate(batch):
        x = np.uint8(filters.gaussian((image / 255.0)[None], sigma)[0] * 255)
        for shift in shifts:
            for i, h in enumerate(rows):
                for j, w in enumerate(cols):
                    x[h, w] = x[h + shift[1, n, i, j], w + shift[0, n, i, j]]
        expected.append(np.uint8(np.clip(filters.gaussian((x / 255.0)[None], sigma)[0], 0, 1) * 255))
    assert np.array_equal(corrupt(batch, "glass_blur", severity, seed=7, params=pset), np.stack(expected))


def test_shuffle_sources_follow_chains_of_copies() -> None:
    # a 1 x 5 scan (one row visited, columns 3, 2, 1) where each pixel copies its right-hand neighbour
    rows, cols = np.array([1]), np.array([3, 2, 1])
    right = np.ones((1, 1, 3), np.int64)
    sources = shuffle_sources(3, 5, rows, cols, dy=np.zeros_like(right), dx=right)
    # column 3 copies column 4 (never visited); 2 copies the new 3 (= old 4); 1 copies the new 2 (= old 4)
    assert sources.reshape(3, 5)[1].tolist() == [5, 9, 9, 9, 9]
