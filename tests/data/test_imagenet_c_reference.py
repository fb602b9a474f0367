"""224-pixel images get the ImageNet-C numbers, checked on 20 images per (corruption, severity) against the
``imagecorruptions`` package (the ImageNet-C parameters at any size): the same mean pixel change within
25%, with distinct severities wherever the package's are.

``imagecorruptions`` replaced the recipe's elastic_transform by another algorithm (no affine step, other
numbers), so elastic_transform is checked against make_imagenet_c.py's recipe restated image by image
(``reference_recipe``), and so are the corruptions that draw no random numbers, image for image.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from moo_compress.data import load_dataset, stratified_indices
from moo_compress.data.corruptions import ALL_CORRUPTIONS, corrupt, get_param_set
from moo_compress.data.resize import resize_images
from tests.data.reference_checks import DETERMINISTIC, assert_equal_to_reference, assert_like_reference, mean_change
from tests.data.reference_recipe import reference_corrupt
from tests.data.synthetic import import_imagecorruptions, natural_images

IMAGENET = get_param_set("imagenet")
SLOW = {"glass_blur"}  # imagecorruptions' pixel loop: about 80 s for 100 images
# fog's change varies most from image to image (a plasma fractal of few, large features), so 20 images
# do not separate its severities 1 and 2 (about 10% apart); it is cheap, and gets 100.
IMAGES = {"fog": 100}


@pytest.fixture(scope="module")
def many_images() -> np.ndarray:
    return natural_images(100, 224, seed=1)


@pytest.fixture(scope="module")
def images(many_images: np.ndarray) -> np.ndarray:
    return many_images[:20]


def _imagecorruptions(name: str, images: np.ndarray, severity: int) -> np.ndarray:
    ic = import_imagecorruptions()
    np.random.seed(severity)  # the package draws from NumPy's global generator
    return np.stack([ic.corrupt(image, corruption_name=name, severity=severity) for image in images])


def _recipe(name: str, images: np.ndarray, severity: int) -> np.ndarray:
    rs = np.random.RandomState(severity)
    c = IMAGENET.param(name, severity)
    return np.stack([reference_corrupt(name, image, c, rs, frost_scale=IMAGENET.frost_scale) for image in images])


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n
                                  for n in ALL_CORRUPTIONS if n != "elastic_transform"])
def test_mean_change_matches_imagecorruptions(name: str, many_images: np.ndarray) -> None:
    images = many_images[:IMAGES.get(name, 20)]
    ours = [mean_change(corrupt(images, name, s, seed=0), images) for s in range(1, 6)]
    reference = [mean_change(_imagecorruptions(name, images, s), images) for s in range(1, 6)]
    assert_like_reference(ours, reference)


@pytest.mark.slow
def test_elastic_transform_matches_the_recipe(images: np.ndarray) -> None:
    ours = [mean_change(corrupt(images, "elastic_transform", s, seed=0), images) for s in range(1, 6)]
    reference = [mean_change(_recipe("elastic_transform", images, s), images) for s in range(1, 6)]
    assert_like_reference(ours, reference)


@pytest.mark.parametrize("name", DETERMINISTIC)
@pytest.mark.slow
def test_deterministic_corruptions_equal_the_recipe(name: str, images: np.ndarray) -> None:
    batch = images[:4]
    for severity in range(1, 6):
        assert_equal_to_reference(corrupt(batch, name, severity), _recipe(name, batch, severity))


@pytest.mark.shared_data
@pytest.mark.parametrize("name", ["gaussian_noise", "impulse_noise", "defocus_blur", "motion_blur", "snow", "frost",
                                  "fog", "contrast", "pixelate", "jpeg_compression", "spatter", "saturate"])
@pytest.mark.slow
def test_upsampled_cifar_photographs_match_imagecorruptions(name: str, cifar10_root: Path) -> None:
    """The same check on real photographs: CIFAR-10 test images upsampled to 224 (two per class)."""
    clean = load_dataset("cifar10", "test", data_root=cifar10_root)
    images = resize_images(np.ascontiguousarray(clean.images[stratified_indices(clean.labels, 2, seed=0)]),
                           (224, 224))
    ours = [mean_change(corrupt(images, name, s, seed=0), images) for s in range(1, 6)]
    reference = [mean_change(_imagecorruptions(name, images, s), images) for s in range(1, 6)]
    assert_like_reference(ours, reference)
