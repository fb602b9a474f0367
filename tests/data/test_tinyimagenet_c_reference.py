"""64-pixel images get the Tiny-ImageNet-C numbers, checked against make_tinyimagenet_c.py's recipe restated
image by image (``reference_recipe``): equal where the recipe draws no random numbers, the same mean pixel
change (within 25%) with distinct severities where it does.

motion_blur and snow call ImageMagick (Wand) in the recipe; their reference here is the ``imagecorruptions``
package's NumPy port of ImageMagick's motion blur, the closest one available.
"""

from __future__ import annotations

import numpy as np
import pytest

from moo_compress.data.corruptions import ALL_CORRUPTIONS, corrupt, get_param_set
from tests.data.reference_checks import DETERMINISTIC, assert_equal_to_reference, assert_like_reference, mean_change
from tests.data.reference_recipe import reference_corrupt
from tests.data.synthetic import natural_images

TINY = get_param_set("tinyimagenet")


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    return natural_images(20, 64, seed=1)


def _reference(name: str, images: np.ndarray, severity: int) -> np.ndarray:
    rs = np.random.RandomState(severity)
    c = TINY.param(name, severity)
    return np.stack([reference_corrupt(name, image, c, rs, frost_scale=TINY.frost_scale) for image in images])


def test_64_pixel_images_get_the_tinyimagenet_set(images: np.ndarray) -> None:
    assert np.array_equal(corrupt(images[:2], "fog", 2), corrupt(images[:2], "fog", 2, params="tinyimagenet"))


@pytest.mark.parametrize("name", DETERMINISTIC)
def test_deterministic_corruptions_equal_the_recipe(name: str, images: np.ndarray) -> None:
    for severity in range(1, 6):
        assert_equal_to_reference(corrupt(images, name, severity), _reference(name, images, severity))


@pytest.mark.parametrize("name", [n for n in ALL_CORRUPTIONS if n not in DETERMINISTIC])
@pytest.mark.slow
def test_random_corruptions_change_images_as_much_as_the_recipe(name: str, images: np.ndarray) -> None:
    ours = [mean_change(corrupt(images, name, s, seed=0), images) for s in range(1, 6)]
    reference = [mean_change(_reference(name, images, s), images) for s in range(1, 6)]
    assert_like_reference(ours, reference)
