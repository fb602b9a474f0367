"""A run's context is resolved once, and the data a newcomer brings is used where that is sound."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import pytest
import yaml

from moo_compress.errors import ConfigError
from moo_compress.search.context import MIN_CALIBRATION_IMAGES, resolve_context
from tests.conftest import make_image_folder
from tests.search.conftest import tiny_search_settings


def _with_train_images(tmp_path: Path, per_class: int, bn_images: int):  # noqa: ANN202 - a test helper
    settings = tiny_search_settings(tmp_path)
    data = make_image_folder(tmp_path / "few", classes=10, per_split={"train": per_class, "test": 6})
    space = Path(settings.target.space)
    spec = yaml.safe_load(space.read_text())
    spec["recovery"] = {"bn_images": bn_images}
    space.write_text(yaml.safe_dump(spec))
    return settings.replace(target={"data_root": str(data)})


def test_a_space_asking_for_more_calibration_images_than_the_data_holds_uses_them_all(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    settings = _with_train_images(tmp_path, per_class=7, bn_images=512)
    with caplog.at_level(logging.WARNING, logger="moo_compress"):
        ctx = resolve_context(settings)
    assert ctx.space.recovery.bn_images == 70 and ctx.reference_plan.recovery.bn_images == 70
    assert ctx.base_spec.calibration_images == 70
    assert "using all 70" in caplog.text and "--calibration-images" in caplog.text


def test_too_few_calibration_images_or_too_many_asked_name_the_fix(tmp_path: Path) -> None:
    settings = _with_train_images(tmp_path, per_class=3, bn_images=512)
    assert 30 < MIN_CALIBRATION_IMAGES
    with pytest.raises(ConfigError, match="holds 30.*recovery.bn_images"):
        resolve_context(settings)
    asked = settings.replace(target={"calibration_images": 600})
    with pytest.raises(ConfigError, match="pass --calibration-images 30 or fewer"):
        resolve_context(asked)


def test_a_folder_of_ones_own_passed_as_data_root_names_the_data_option(tmp_path: Path) -> None:
    settings = tiny_search_settings(tmp_path)
    five = make_image_folder(tmp_path / "five", classes=5, per_split={"train": 2, "test": 2})
    wrong = dataclasses.replace(settings, target=dataclasses.replace(settings.target, dataset="cifar10",
                                                                     data_root=str(five)))
    with pytest.raises(ConfigError, match="holds 5 class folders but cifar10 has 10.*--data DIR"):
        resolve_context(wrong)
