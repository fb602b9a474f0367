"""A reference no recipe can damage: the space's recovery is checked on the uncompressed model first."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from moo_compress.compress import CompressionPlan
from moo_compress.search.context import resolve_context
from moo_compress.search.records import Claim
from moo_compress.search.reference import ReferenceCheck, guard_reference
from tests.search.conftest import TINY_SPACE
from tests.search.test_golden import golden_settings


def _with_recovery(tmp_path: Path, recovery: dict) -> object:
    # a ResNet-20 that learned a 4-class task (a recovery can cost it), 200 search-split images per class
    settings = golden_settings(tmp_path, test_per_class=100, select_images=200)
    Path(settings.target.space).write_text(yaml.safe_dump({**TINY_SPACE, "name": "guard", "recovery": recovery}))
    return settings


@pytest.mark.slow
def test_a_recovery_that_wrecks_the_uncompressed_model_is_not_applied_to_the_reference(tmp_path: Path) -> None:
    # one Adam step at rate 0.9 moves every weight by about 0.9: the network falls to chance (25%)
    wrecking = {"bn_images": 20, "finetune_steps": 1, "finetune_lr": 0.9, "finetune_batch_size": 16}
    ctx = resolve_context(_with_recovery(tmp_path, wrecking))
    assert ctx.reference_plan.recovery.finetune_steps == 1
    guarded, check = guard_reference(ctx)
    assert check is not None and check.damaged and check.clean_delta.high < 0
    assert guarded.reference_plan == CompressionPlan() and check.reference == CompressionPlan()
    assert guarded.space.recovery.finetune_steps == 1  # the plans keep their recovery
    assert "the reference of this run is the original model" in check.note()
    assert check.to_dict()["reference"] == "original" and check.images == 200  # screening and selection images


def test_a_recovery_within_the_noise_keeps_the_recovered_reference() -> None:
    recovered = CompressionPlan.from_dict({"recovery": {"bn_images": 512}})
    tie, loss = Claim(-0.3, -1.5, 0.9), Claim(-2.0, -3.1, -0.9)
    kept = ReferenceCheck(recovered, clean_delta=tie, mca_delta=tie, images=80, n_clean=800)
    assert kept.reference == recovered and "within the noise" in kept.note()
    # robustness alone decides too: a recovery that keeps clean accuracy but costs robustness is damage
    lost = ReferenceCheck(recovered, clean_delta=tie, mca_delta=loss, images=80, n_clean=800)
    assert lost.reference == CompressionPlan() and "-2.0 [-3.1, -0.9]" in lost.note()
