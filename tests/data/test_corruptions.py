"""The 19 CIFAR-C corruptions: contract, determinism, parameters, and agreement with the reference recipe."""

from __future__ import annotations

import io

import cv2
import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from moo_compress.data.corruptions import (
    ALL_CORRUPTIONS,
    BENCHMARK_CORRUPTIONS,
    CORRUPTION_FAMILIES,
    EXTRA_CORRUPTIONS,
    PARAMS,
    api,
    base,
    corrupt,
    corrupt_into,
    filters,
    fractal,
    geometry,
    list_corruptions,
    motion,
    resolve_corruptions,
)
from moo_compress.errors import ConfigError, DataFormatError, UnknownNameError

DETERMINISTIC = {"defocus_blur", "zoom_blur", "gaussian_blur", "brightness", "contrast", "pixelate",
                 "jpeg_compression", "saturate"}
# Corruptions whose CIFAR parameters strengthen with every severity step (cifar-c.md); the others
# (glass_blur, frost, elastic_transform, spatter, saturate) are not monotone, and snow's parameters mix
# stronger and weaker settings, so no ordering is asserted for them.
MONOTONE = ["gaussian_noise", "shot_noise", "impulse_noise", "speckle_noise", "defocus_blur", "zoom_blur",
            "gaussian_blur", "fog", "brightness", "contrast", "pixelate", "jpeg_compression"]


def natural_images(count: int, seed: int = 0) -> np.ndarray:
    """Smooth random colour fields with a sharp rectangle: enough structure for blurs and JPEG to bite."""
    rng = np.random.default_rng(seed)
    field = ndimage.gaussian_filter(rng.normal(size=(count, 32, 32, 3)), sigma=(0, 2.5, 2.5, 0))
    low = field.min(axis=(1, 2, 3), keepdims=True)
    field = (field - low) / (field.max(axis=(1, 2, 3), keepdims=True) - low)
    images = 30 + 190 * field
    for image in images:
        top, left = rng.integers(4, 20, size=2)
        image[top: top + 9, left: left + 9] = rng.uniform(0, 255, size=3)
    return images.astype(np.uint8)


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    return natural_images(24)


def mad(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


# ---------------------------------------------------------------------------------------- names


def test_names_order_and_families() -> None:
    assert BENCHMARK_CORRUPTIONS == (
        "gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur", "glass_blur", "motion_blur", "zoom_blur",
        "snow", "frost", "fog", "brightness", "contrast", "elastic_transform", "pixelate", "jpeg_compression")
    assert EXTRA_CORRUPTIONS == ("speckle_noise", "gaussian_blur", "spatter", "saturate")
    assert ALL_CORRUPTIONS == BENCHMARK_CORRUPTIONS + EXTRA_CORRUPTIONS
    assert list_corruptions("weather") == ["snow", "frost", "fog", "brightness", "spatter"]
    assert [n for n in BENCHMARK_CORRUPTIONS if CORRUPTION_FAMILIES[n] == "digital"] == [
        "contrast", "elastic_transform", "pixelate", "jpeg_compression"]
    assert list_corruptions("benchmark", family="noise") == ["gaussian_noise", "shot_noise", "impulse_noise"]
    assert list_corruptions("*_blur") == ["defocus_blur", "glass_blur", "motion_blur", "zoom_blur", "gaussian_blur"]
    assert resolve_corruptions(["fog", "noise", "fog"]) == ("gaussian_noise", "shot_noise", "impulse_noise", "fog",
                                                            "speckle_noise")
    assert all(len(spec.params) == 5 for spec in PARAMS.values())


def test_unknown_name_suggests_close_match(images: np.ndarray) -> None:
    with pytest.raises(UnknownNameError, match="did you mean 'gaussian_noise'"):
        corrupt(images, "gausian_noise", 1)
    with pytest.raises(UnknownNameError, match="did you mean 'elastic_transform'"):
        resolve_corruptions(["elastic"])
    with pytest.raises(UnknownNameError):
        list_corruptions("nothing*")


# ---------------------------------------------------------------------------------------- contract


@pytest.mark.parametrize("name", ALL_CORRUPTIONS)
def test_shape_dtype_and_input_untouched(name: str, images: np.ndarray) -> None:
    batch = images[:4].copy()
    batch.setflags(write=False)  # like a memory-mapped dataset
    for severity in range(1, 6):
        out = corrupt(batch, name, severity)
        assert out.shape == batch.shape and out.dtype == np.uint8
    assert np.array_equal(batch, images[:4])
    assert corrupt(images[:0], name, 3).shape == (0, 32, 32, 3)


@pytest.mark.parametrize("name", ALL_CORRUPTIONS)
def test_deterministic_for_a_seed_and_seeds_differ(name: str, images: np.ndarray) -> None:
    batch = images[:6]
    first = corrupt(batch, name, 3, seed=1)
    assert np.array_equal(first, corrupt(batch, name, 3, seed=1))
    other = corrupt(batch, name, 3, seed=2)
    if name in DETERMINISTIC:
        assert np.array_equal(first, other)
    else:
        assert not np.array_equal(first, other)


def test_chunks_on_block_boundaries_equal_the_whole_batch(images: np.ndarray, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(api, "BLOCK_SIZE", 5)
    for name in ("shot_noise", "motion_blur", "frost"):
        whole = corrupt(images, name, 4, seed=3)
        parts = np.empty_like(images)
        for start in range(0, len(images), 10):
            corrupt_into(parts[start: start + 10], images[start: start + 10], name, 4, seed=3, first_block=start // 5)
        assert np.array_equal(whole, parts)


@pytest.mark.parametrize(
    ("bad", "error", "match"),
    [
        (np.zeros((2, 32, 32, 3), np.float32), DataFormatError, "uint8"),
        (np.zeros((2, 32, 32), np.uint8), DataFormatError, r"\(N, 32, 32, 3\)"),
        (np.zeros((32, 32, 3), np.uint8), DataFormatError, r"images\[None\]"),
        (np.zeros((2, 8, 8, 3), np.uint8), DataFormatError, "at least 16 x 16"),  # 64x64 is valid now
        (np.zeros((2, 3, 32, 32), np.uint8), DataFormatError, "NHWC"),
        ([[0]], DataFormatError, "NumPy"),
    ],
)
def test_bad_images(bad: object, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        corrupt(bad, "contrast", 1)  # type: ignore[arg-type]


@pytest.mark.parametrize("severity", [0, 6, -1, 2.0, True, "3"])
def test_bad_severity(severity: object, images: np.ndarray) -> None:
    with pytest.raises(ConfigError, match="severity must be an integer from 1 to 5"):
        corrupt(images, "contrast", severity)  # type: ignore[arg-type]


def test_bad_seed(images: np.ndarray) -> None:
    with pytest.raises(ConfigError, match="seed"):
        corrupt(images, "gaussian_noise", 1, seed=-1)


# ---------------------------------------------------------------------------------------- parameters


@pytest.mark.parametrize("name", MONOTONE)
def test_distortion_grows_with_severity(name: str, images: np.ndarray) -> None:
    distortion = [mad(corrupt(images, name, s), images) for s in range(1, 6)]
    assert all(b > a for a, b in zip(distortion, distortion[1:], strict=False)), distortion


def test_motion_blur_distortion_grows_with_severity(images: np.ndarray) -> None:
    # The angle is random per image, so compare the kernels of the five severities at the same angles.
    angles = np.random.default_rng(0).uniform(-45, 45, len(images))
    distortion = [mad(motion.motion_blur(images, *PARAMS["motion_blur"].param(s), angles), images) for s in range(1, 6)]
    # Severities 3 and 4, (radius 6, sigma 2) and (8, 2), differ only in taps 13..16 whose weights are
    # below 1e-9: the reference's CIFAR motion blur is the same at both, and so is ours.
    assert distortion[0] < distortion[1] < distortion[2] == distortion[3] < distortion[4], distortion


def test_non_monotone_parameters_are_kept(images: np.ndarray) -> None:
    # saturate's factor goes .3, .1, 1.5, ...: severity 2 changes images more than severity 3.
    assert mad(corrupt(images, "saturate", 2), images) > mad(corrupt(images, "saturate", 3), images)
    # elastic_transform's affine jitter is largest at severity 1 and smallest at 5.
    assert [PARAMS["elastic_transform"].param(s)[2] for s in range(1, 6)] == pytest.approx(
        [2.56, 2.24, 1.92, 1.6, 0.96])


def test_gaussian_noise_std_matches_parameter() -> None:
    grey = np.full((40, 32, 32, 3), 128, np.uint8)
    for severity, c in enumerate(PARAMS["gaussian_noise"].params, start=1):
        out = corrupt(grey, "gaussian_noise", severity).astype(np.float64)
        assert out.std() == pytest.approx(c * 255, rel=0.02)
        assert out.mean() == pytest.approx(127.5, abs=0.3)  # truncation lowers the mean by half a level


def test_shot_and_speckle_noise_statistics_match_parameters() -> None:
    grey = np.full((40, 32, 32, 3), 128, np.uint8)
    x = 128 / 255
    for severity in range(1, 6):
        shot = corrupt(grey, "shot_noise", severity).astype(np.float64)
        assert shot.std() == pytest.approx(np.sqrt(x / PARAMS["shot_noise"].param(severity)) * 255, rel=0.04)
        speckle = corrupt(grey, "speckle_noise", severity).astype(np.float64)
        assert speckle.std() == pytest.approx(x * PARAMS["speckle_noise"].param(severity) * 255, rel=0.03)


def test_impulse_noise_flips_a_fraction_c_of_values_to_black_or_white() -> None:
    grey = np.full((40, 32, 32, 3), 128, np.uint8)
    for severity, c in enumerate(PARAMS["impulse_noise"].params, start=1):
        out = corrupt(grey, "impulse_noise", severity)
        salt, pepper = np.mean(out == 255), np.mean(out == 0)
        assert salt + pepper == pytest.approx(c, rel=0.08)
        assert salt == pytest.approx(pepper, rel=0.2)
        assert np.all((out == 0) | (out == 255) | (out == 128))


@pytest.mark.parametrize("severity", range(1, 6))
def test_jpeg_and_pixelate_equal_pil(severity: int, images: np.ndarray) -> None:
    quality = PARAMS["jpeg_compression"].param(severity)
    size = int(32 * PARAMS["pixelate"].param(severity))
    jpeg = corrupt(images, "jpeg_compression", severity)
    pixel = corrupt(images, "pixelate", severity)
    for i, image in enumerate(images):
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, "JPEG", quality=quality)
        assert np.array_equal(jpeg[i], np.asarray(Image.open(buffer)))
        small = Image.fromarray(image).resize((size, size), Image.BOX).resize((32, 32), Image.BOX)
        assert np.array_equal(pixel[i], np.asarray(small))


# ---------------------------------------------------------------------------------------- reference agreement
# Per-image restatements of the reference recipe (cifar-c.md) with the library calls it names.


def test_gaussian_blur_equals_scikit_image(images: np.ndarray) -> None:
    skfilters = pytest.importorskip("skimage.filters")
    for severity in (1, 5):
        c = PARAMS["gaussian_blur"].param(severity)
        expected = [np.uint8(np.clip(skfilters.gaussian(im / 255.0, sigma=c, channel_axis=-1), 0, 1) * 255)
                    for im in images[:4]]
        assert np.array_equal(corrupt(images[:4], "gaussian_blur", severity), np.stack(expected))


def test_hsv_corruptions_equal_scikit_image(images: np.ndarray) -> None:
    color = pytest.importorskip("skimage.color")
    for severity in (2, 5):
        c = PARAMS["brightness"].param(severity)
        a, b = PARAMS["saturate"].param(severity)
        bright, sat = [], []
        for im in images[:6]:
            hsv = color.rgb2hsv(im / 255.0)
            hsv[..., 2] = np.clip(hsv[..., 2] + c, 0, 1)
            bright.append(np.uint8(np.clip(color.hsv2rgb(hsv), 0, 1) * 255))
            hsv = color.rgb2hsv(im / 255.0)
            hsv[..., 1] = np.clip(hsv[..., 1] * a + b, 0, 1)
            sat.append(np.uint8(np.clip(color.hsv2rgb(hsv), 0, 1) * 255))
        assert np.array_equal(corrupt(images[:6], "brightness", severity), np.stack(bright))
        assert np.array_equal(corrupt(images[:6], "saturate", severity), np.stack(sat))


def test_contrast_equals_reference(images: np.ndarray) -> None:
    c = PARAMS["contrast"].param(4)
    expected = []
    for im in images[:4]:
        x = im / 255.0
        means = np.mean(x, axis=(0, 1), keepdims=True)
        expected.append(np.uint8(np.clip((x - means) * c + means, 0, 1) * 255))
    assert np.array_equal(corrupt(images[:4], "contrast", 4), np.stack(expected))


def test_defocus_blur_matches_opencv_filter2d(images: np.ndarray) -> None:
    for severity in (1, 4, 5):
        kernel = filters.disk_kernel(*PARAMS["defocus_blur"].param(severity))
        expected = np.stack([
            np.uint8(
                np.clip(np.stack([cv2.filter2D(im[..., d] / 255.0, -1, kernel) for d in range(3)], -1), 0, 1) * 255
            )
            for im in images[:6]])
        out = corrupt(images[:6], "defocus_blur", severity)
        assert np.abs(out.astype(int) - expected).max() <= 1  # summation order only
        assert np.mean(out == expected) > 0.999


@pytest.mark.parametrize("zoom", [1.0, 1.01, 1.07, 1.25, 1.75, 2.25])
def test_zoom_matrix_equals_scipy_zoom(zoom: float) -> None:
    x = np.random.default_rng(0).random((32, 32))
    crop = int(np.ceil(32 / zoom))
    top = (32 - crop) // 2
    zoomed = ndimage.zoom(x[top: top + crop, top: top + crop], zoom, order=1)
    trim = (zoomed.shape[0] - 32) // 2
    expected = zoomed[trim: trim + 32, trim: trim + 32]
    matrix = geometry.zoom_matrix(32, zoom)
    np.testing.assert_allclose(matrix @ x @ matrix.T, expected, atol=1e-12)


def test_zoom_blur_matches_reference(images: np.ndarray) -> None:
    c = PARAMS["zoom_blur"].param(2)
    expected = []
    for im in images[:3]:
        x = (im / 255.0).astype(np.float32)
        total = np.zeros_like(x)
        for z in np.arange(*c):
            crop = int(np.ceil(32 / z))
            top = (32 - crop) // 2
            zoomed = ndimage.zoom(x[top: top + crop, top: top + crop], (z, z, 1), order=1)
            trim = (zoomed.shape[0] - 32) // 2
            total += zoomed[trim: trim + 32, trim: trim + 32]
        expected.append(np.uint8(np.clip((x + total) / (len(np.arange(*c)) + 1), 0, 1) * 255))
    out = corrupt(images[:3], "zoom_blur", 2)
    assert np.abs(out.astype(int) - np.stack(expected)).max() <= 1
    assert np.mean(out == np.stack(expected)) > 0.99


def test_glass_blur_equals_the_sequential_reference_loop(images: np.ndarray) -> None:
    sigma, delta, iterations = PARAMS["glass_blur"].param(5)
    batch = images[:3]
    shifts_rng = base.block_rng(7, "glass_blur", 5, 0)
    visited = np.arange(32 - delta, delta, -1)
    shifts = [shifts_rng.integers(-delta, delta, size=(2, len(batch), visited.size, visited.size))
              for _ in range(iterations)]
    expected = []
    for n, im in enumerate(batch):
        x = np.uint8(filters.gaussian((im / 255.0)[None], sigma)[0] * 255)
        for it in range(iterations):
            for i, h in enumerate(visited):  # the reference's pixel loop, with its view "swap"
                for j, w in enumerate(visited):
                    dx, dy = shifts[it][0, n, i, j], shifts[it][1, n, i, j]
                    x[h, w], x[h + dy, w + dx] = x[h + dy, w + dx], x[h, w]
        expected.append(np.uint8(np.clip(filters.gaussian((x / 255.0)[None], sigma)[0], 0, 1) * 255))
    assert np.array_equal(corrupt(batch, "glass_blur", 5, seed=7), np.stack(expected))


def test_motion_blur_equals_direct_tap_sum() -> None:
    images = natural_images(5, seed=3)
    angles = np.array([-45.0, -20.3, 0.0, 13.7, 45.0])
    radius, sigma = 9, 2.5
    kernel = motion.line_kernel(radius, sigma)
    assert kernel.size == 19 and kernel[0] == kernel.max() and kernel.sum() == pytest.approx(1)
    ox, oy = motion.line_offsets(angles, kernel.size)
    assert np.array_equal(ox[2], np.arange(19)) and np.array_equal(oy[2], np.zeros(19))  # angle 0: rightwards
    assert np.array_equal(ox[4], oy[4])  # 45 degrees: the diagonal, down and right
    ys, xs = np.mgrid[0:32, 0:32]
    expected = np.zeros(images.shape)
    for n in range(len(images)):
        for i in range(kernel.size):
            expected[n] += kernel[i] * images[n, np.clip(ys + oy[n, i], 0, 31), np.clip(xs + ox[n, i], 0, 31)]
    out = motion.motion_blur(images, radius, sigma, angles)
    assert np.array_equal(out, np.clip(np.floor(expected + 0.5), 0, 255).astype(np.uint8))


def test_plasma_fractal_equals_the_reference_for_one_map() -> None:
    def reference(rng: np.random.Generator, mapsize: int = 32, decay: float = 2.5) -> np.ndarray:
        maparray = np.zeros((mapsize, mapsize))
        stepsize, wibble = mapsize, 100.0
        while stepsize >= 2:
            half = stepsize // 2
            corner = maparray[0:mapsize:stepsize, 0:mapsize:stepsize]
            square = corner + np.roll(corner, shift=-1, axis=0)
            square += np.roll(square, shift=-1, axis=1)
            maparray[half::stepsize, half::stepsize] = square / 4 + wibble * rng.uniform(-wibble, wibble, square.shape)
            dr = maparray[half::stepsize, half::stepsize]
            ul = maparray[0::stepsize, 0::stepsize]
            lt = (dr + np.roll(dr, 1, axis=0)) + (ul + np.roll(ul, -1, axis=1))
            maparray[0::stepsize, half::stepsize] = lt / 4 + wibble * rng.uniform(-wibble, wibble, lt.shape)
            tt = (dr + np.roll(dr, 1, axis=1)) + (ul + np.roll(ul, -1, axis=0))
            maparray[half::stepsize, 0::stepsize] = tt / 4 + wibble * rng.uniform(-wibble, wibble, tt.shape)
            stepsize //= 2
            wibble /= decay
        maparray -= maparray.min()
        return maparray / maparray.max()

    ours = fractal.plasma_fractal(1, np.random.default_rng(5), wibble_decay=2.5)[0]
    np.testing.assert_array_equal(ours, reference(np.random.default_rng(5)))


def test_elastic_transform_matches_opencv_and_scipy(images: np.ndarray) -> None:
    severity, seed = 4, 2
    alpha, sigma, jitter = PARAMS["elastic_transform"].param(severity)
    batch = images[:4]
    rng = base.block_rng(seed, "elastic_transform", severity, 0)
    points = np.float32([[26, 26], [26, 6], [6, 6]])
    moved = points + rng.uniform(-jitter, jitter, size=(len(batch), 3, 2)).astype(np.float32)
    noise_x = rng.uniform(-1, 1, size=(len(batch), 32, 32))
    noise_y = rng.uniform(-1, 1, size=(len(batch), 32, 32))
    expected = []
    for n, im in enumerate(batch):
        x = np.array(im, dtype=np.float32) / 255.0
        matrix = cv2.getAffineTransform(points, moved[n])
        x = cv2.warpAffine(x, matrix, (32, 32), borderMode=cv2.BORDER_REFLECT_101)
        dx = (ndimage.gaussian_filter(noise_x[n], sigma, mode="reflect", truncate=3) * alpha).astype(np.float32)
        dy = (ndimage.gaussian_filter(noise_y[n], sigma, mode="reflect", truncate=3) * alpha).astype(np.float32)
        gx, gy, gz = np.meshgrid(np.arange(32), np.arange(32), np.arange(3))
        coords = (np.reshape(gy + dy[..., None], (-1, 1)), np.reshape(gx + dx[..., None], (-1, 1)),
                  np.reshape(gz, (-1, 1)))
        warped = ndimage.map_coordinates(x, coords, order=1, mode="reflect").reshape(x.shape)
        expected.append(np.uint8(np.clip(warped, 0, 1) * 255))
    out = corrupt(batch, "elastic_transform", severity, seed=seed).astype(int)
    diff = np.abs(out - np.stack(expected))
    # cv2.warpAffine rounds sample positions to 1/32 pixel; we sample at the exact positions
    assert diff.mean() < 0.5 and np.percentile(diff, 99) <= 3


def test_frost_blends_a_crop_of_a_frost_texture() -> None:
    from moo_compress.data.corruptions import textures

    black = np.zeros((6, 32, 32, 3), np.uint8)
    a, b = PARAMS["frost"].param(3)
    out = corrupt(black, "frost", 3, seed=4)
    rng = base.block_rng(4, "frost", 3, 0)
    which = rng.integers(5, size=6)
    for index, texture in enumerate(textures.frost_textures()):
        members = np.flatnonzero(which == index)
        if members.size == 0:
            continue
        tops = rng.integers(0, texture.shape[0] - 32, size=members.size)
        lefts = rng.integers(0, texture.shape[1] - 32, size=members.size)
        for n, top, left in zip(members, tops, lefts, strict=True):
            crop = texture[top: top + 32, left: left + 32][..., ::-1]
            assert np.array_equal(out[n], np.uint8(np.clip(b * crop.astype(np.float64), 0, 255)))


def test_frost_textures_come_from_imagecorruptions() -> None:
    from moo_compress.data.corruptions import textures

    assert textures.frost_dir().parent.name == "imagecorruptions"
    assert [t.shape[2] for t in textures.frost_textures()] == [3] * 5
    assert min(min(t.shape[:2]) for t in textures.frost_textures()) > 32


def test_snow_and_spatter_change_images_the_expected_way(images: np.ndarray) -> None:
    grey = np.full((16, 32, 32, 3), 100, np.uint8)
    # snow brightens (flakes and the 1.5 gray + .5 lift)
    assert all(corrupt(grey, "snow", s).mean() > 100 for s in range(1, 6))
    # water (severities 1-3) only adds pale turquoise, mud (4-5) only darkens towards brown
    for s in (1, 2, 3):
        water = corrupt(grey, "spatter", s).astype(int) - 100
        assert water.min() >= -1 and (water[..., 2] >= water[..., 0]).all()
    for s in (4, 5):
        mud = corrupt(grey, "spatter", s).astype(int) - 100
        assert mud.max() <= 0 and mud.min() < -30
