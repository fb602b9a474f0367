"""Recovery as a fidelity: the expensive recovery level goes to the plans that can reach the front."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from moo_compress.compress import CompressionPlan, RecoveryConfig
from moo_compress.errors import ConfigError
from moo_compress.search import FidelitySettings
from moo_compress.search.context import resolve_context
from moo_compress.search.promotion import predicted_points
from moo_compress.search.reevaluate import reevaluate_run
from moo_compress.search.run import run_search
from moo_compress.search.space import SearchSpace
from tests.search.conftest import TINY_SPACE
from tests.search.test_golden import golden_settings

#: The expensive level of the tests: 30 Adam steps on labels (the tiny 4-class net is far from trained, so
#: fine-tuning lifts every plan well above what batch-norm re-estimation gives).
LEVEL = {"finetune_steps": 30, "finetune_lr": 1e-3, "finetune_batch_size": 16}


def test_the_predicted_point_closes_the_learned_fraction_of_the_gap_to_the_target() -> None:
    target = np.array([-0.80, -0.70, 0.0])
    F = np.array([[-0.60, -0.50, -4.0],   # 20 points below the target in both
                  [-0.85, -0.60, -2.0]])  # above it in clean accuracy: nothing to close there
    full = predicted_points(F, target, np.array([1.0, 1.0]))
    assert np.allclose(full[0], [-0.80, -0.70, -4.0])  # the ratio is never predicted to change
    assert np.allclose(full[1], [-0.85, -0.70, -2.0])
    half = predicted_points(F, target, np.array([0.5, 0.25]))
    assert np.allclose(half[0], [-0.70, -0.55, -4.0])
    assert np.allclose(predicted_points(F, target, np.zeros(2)), F)


def test_the_space_promote_section_is_validated_and_builds_on_the_space_recovery() -> None:
    space = SearchSpace.from_dict({**TINY_SPACE, "promote": {"plans": 3, "recovery": LEVEL}})
    assert space.promotion.enabled and space.promotion.plans == 3
    assert space.promotion.recovery == RecoveryConfig(bn_images=20, **LEVEL)  # the cheap level's steps kept
    assert space.promotion.recovery.level == "ft30" and space.recovery.level == "bn"
    assert SearchSpace.from_dict(space.to_dict()).promotion == space.promotion  # round trip
    assert not SearchSpace.from_dict(TINY_SPACE).promotion.enabled
    with pytest.raises(ConfigError, match="unknown key.*finetune_stepz.*valid keys: bn_images"):
        SearchSpace.from_dict({**TINY_SPACE, "promote": {"recovery": {"finetune_stepz": 3}}})
    with pytest.raises(ConfigError, match="must fine-tune"):
        SearchSpace.from_dict({**TINY_SPACE, "promote": {"plans": 2, "recovery": {"bn_images": 64}}})
    with pytest.raises(ConfigError, match="promote.plans must be an integer >= 0"):
        SearchSpace.from_dict({**TINY_SPACE, "promote": {"plans": -1, "recovery": LEVEL}})


def test_recovery_levels_are_named_by_what_they_run() -> None:
    assert RecoveryConfig().level == "none" and RecoveryConfig(bn_images=512).level == "bn"
    assert RecoveryConfig(bn_images=512, finetune_steps=100).level == "ft100"
    assert RecoveryConfig(finetune_steps=100, finetune_distill=1.0).level == "kd100"
    assert RecoveryConfig(finetune_steps=50, finetune_distill=1.0, finetune_label_weight=0.0,
                          finetune_augment="augmix").level == "pkd50+augmix"
    with pytest.raises(ConfigError, match="no loss"):
        RecoveryConfig(finetune_steps=10, finetune_label_weight=0.0)
    with pytest.raises(ConfigError, match="finetune_bn must be one of"):
        RecoveryConfig(finetune_steps=10, finetune_bn="train")


def test_promote_on_a_space_without_an_expensive_level_names_the_fix(tmp_path: Path) -> None:
    settings = golden_settings(tmp_path)
    settings = settings.replace(fidelity={"promote": 2})
    with pytest.raises(ConfigError, match="has no expensive recovery level.*promote"):
        resolve_context(settings)
    with pytest.raises(ConfigError, match="--promote must be an integer >= 0"):
        FidelitySettings(promote=-1)


def _promoting(tmp_path: Path, plans: int) -> object:
    settings = golden_settings(tmp_path)
    space = {**TINY_SPACE, "name": "promote", "algorithm": {"pop_size": 6, "generations": 3},
             "promote": {"plans": plans, "recovery": LEVEL}}
    Path(settings.target.space).write_text(yaml.safe_dump(space))
    return settings


@pytest.mark.slow
def test_a_plan_the_expensive_level_lifts_onto_the_front_is_reported_there(tmp_path: Path,
                                                                           caplog: pytest.LogCaptureFixture) -> None:
    settings = _promoting(tmp_path, plans=3)
    with caplog.at_level("INFO", logger="moo_compress"):
        result = run_search(settings)
    # the screening ETA says what it leaves out
    assert "not the promotion of up to 3 plan(s) to ft30" in caplog.text
    run = Path(settings.output.out)
    evaluations = pd.read_csv(run / "evaluations.csv")
    assert set(evaluations["recovery_level"]) == {"bn", "ft30"}  # every measured plan records its level
    promoted = evaluations[evaluations["recovery_level"] == "ft30"]
    assert len(promoted) == 3 and promoted["label"].str.endswith("+ft30").all()
    assert promoted["promoted_from"].notna().all() and (promoted["images_per_cell"] == 40).all()
    # only the fine-tuned plans are competitive: they reach the front and push re-estimated plans off it
    pareto = pd.read_csv(run / "pareto.csv")
    lifted = pareto[pareto["recovery_level"] == "ft30"]
    assert len(lifted) >= 1 and lifted["final/clean_accuracy"].notna().all()
    assert lifted["final/orig_clean_delta_low"].notna().all()  # deltas against the original, with intervals
    cheap_front = set(evaluations.loc[evaluations["recovery_level"] == "bn"].query("pareto")["label"])
    assert cheap_front - set(pareto["label"]), "the promoted plans displaced no re-estimated plan"
    knees = json.loads((run / "knees.json").read_text())
    summary = knees["baseline"]["promotion"]
    assert summary["level"] == "ft30" and set(summary["onto_front"]) == set(lifted["label"])
    assert summary["check"]["reference"] == "recovered" and summary["seconds"] >= 0
    assert summary["recovery"]["finetune_steps"] == 30 and summary["recovery"]["finetune_bn"] == "batch"
    assert set(result.pareto["label"]) == set(pareto["label"])
    # the promoted plan re-evaluates exactly as the run reported it, against the run's reference
    index = int(lifted.index[0])
    again = reevaluate_run(run, [index], images=60).to_frame().set_index("name")
    assert again.loc["reference", "plan_key"] == CompressionPlan.from_dict(knees["baseline"]["reference_plan"]).key()
    row, name = pareto.loc[index], f"row {index}"
    assert again.loc[name, "plan_key"] == row["plan_key"] and again.loc[name, "cached"]  # the run's own evaluation
    assert again.loc[name, "clean_accuracy"] == pytest.approx(row["final/clean_accuracy"])
    assert again.loc[name, "mean_corruption_accuracy"] == pytest.approx(row["final/mean_corruption_accuracy"])


@pytest.mark.slow
def test_without_promotion_the_front_holds_only_the_cheap_level(tmp_path: Path) -> None:
    settings = _promoting(tmp_path, plans=3).replace(fidelity={"promote": 0})
    run_search(settings)
    run = Path(settings.output.out)
    assert set(pd.read_csv(run / "evaluations.csv")["recovery_level"]) == {"bn"}
    assert set(pd.read_csv(run / "pareto.csv")["recovery_level"]) == {"bn"}
    assert json.loads((run / "knees.json").read_text())["baseline"]["promotion"] is None
