"""Robustness metrics against values computed by hand on small tables."""

from __future__ import annotations

import pandas as pd
import pytest

from moo_compress.data.corruptions import ALL_CORRUPTIONS, BENCHMARK_CORRUPTIONS
from moo_compress.errors import ConfigError
from moo_compress.evaluation import metrics

# Two corruptions x two severities, errors as fractions.
MODEL = {("gaussian_noise", 1): 0.2, ("gaussian_noise", 2): 0.4, ("fog", 1): 0.1, ("fog", 2): 0.3}
REFERENCE = {("gaussian_noise", 1): 0.3, ("gaussian_noise", 2): 0.5, ("fog", 1): 0.1, ("fog", 2): 0.1}
PAIR = {"corruptions": ["gaussian_noise", "fog"], "severities": [1, 2]}


def accuracies(errors: dict) -> dict:
    return {k: 1 - v for k, v in errors.items()}


def test_mce_by_hand() -> None:
    # CE_noise = (.2 + .4) / (.3 + .5) = .75 ; CE_fog = (.1 + .3) / (.1 + .1) = 2 ; mCE = 100 * (.75 + 2) / 2
    assert metrics.corruption_errors(MODEL, REFERENCE, **PAIR) == pytest.approx({"gaussian_noise": 0.75, "fog": 2.0})
    assert metrics.mce(MODEL, REFERENCE, **PAIR) == pytest.approx(137.5)
    assert metrics.mce(REFERENCE, REFERENCE, **PAIR) == pytest.approx(100.0)


def test_relative_mce_by_hand() -> None:
    # model clean error .1, reference clean error .05
    # relCE_noise = ((.2-.1) + (.4-.1)) / ((.3-.05) + (.5-.05)) = .4 / .7
    # relCE_fog   = ((.1-.1) + (.3-.1)) / ((.1-.05) + (.1-.05)) = .2 / .1 = 2
    expected = 100 * (0.4 / 0.7 + 2.0) / 2
    assert metrics.relative_mce(MODEL, 0.1, REFERENCE, 0.05, **PAIR) == pytest.approx(expected)
    with pytest.raises(ConfigError, match="does not rise"):
        metrics.relative_mce(MODEL, 0.1, REFERENCE, 0.1, **PAIR)  # the reference loses nothing under fog
    with pytest.raises(ConfigError, match="clean_error"):
        metrics.relative_mce(MODEL, 10.0, REFERENCE, 0.05, **PAIR)


def test_mean_corruption_accuracy_family_severity_and_unnormalised_mce() -> None:
    acc = accuracies(MODEL)  # .8 .6 .9 .7
    assert metrics.mean_corruption_accuracy(acc, **PAIR) == pytest.approx(0.75)
    assert metrics.unnormalised_mce(acc, **PAIR) == pytest.approx(25.0)  # 100 - 75 %
    assert metrics.accuracy_by_family(acc, **PAIR) == pytest.approx({"noise": 0.7, "weather": 0.8})
    assert metrics.accuracy_by_severity(acc, **PAIR) == pytest.approx({1: 0.85, 2: 0.65})
    assert metrics.accuracy_by_corruption(acc, **PAIR) == pytest.approx({"gaussian_noise": 0.7, "fog": 0.8})
    assert metrics.mean_corruption_accuracy(acc, corruptions=["fog"], severities=[2]) == pytest.approx(0.7)


def test_default_is_15_by_5_and_all_is_19() -> None:
    table = {(c, s): (0.5 if c in BENCHMARK_CORRUPTIONS else 0.0) for c in ALL_CORRUPTIONS for s in range(1, 6)}
    assert metrics.mean_corruption_accuracy(table) == pytest.approx(0.5)
    assert metrics.mean_corruption_accuracy(table, corruptions="all") == pytest.approx(0.5 * 15 / 19)
    assert set(metrics.accuracy_by_family(table)) == {"noise", "blur", "weather", "digital"}
    del table[("fog", 3)]
    with pytest.raises(ConfigError, match=r"lacks 1 of the 75.*\('fog', 3\)"):
        metrics.mean_corruption_accuracy(table)


def test_dataframes_and_dicts_are_interchangeable() -> None:
    frame = metrics.to_frame(MODEL, value="error")
    assert list(frame.columns) == ["corruption", "severity", "accuracy", "error", "family"]
    assert list(frame["corruption"]) == ["gaussian_noise", "gaussian_noise", "fog", "fog"]  # reference order
    assert frame["accuracy"].tolist() == pytest.approx([0.8, 0.6, 0.9, 0.7])
    assert metrics.mce(frame, REFERENCE, **PAIR) == pytest.approx(137.5)
    only_accuracy = frame.drop(columns=["error"])
    assert metrics.mce(only_accuracy, metrics.to_frame(REFERENCE, value="error"), **PAIR) == pytest.approx(137.5)
    assert metrics.mean_corruption_accuracy(frame.drop(columns=["accuracy"]), **PAIR) == pytest.approx(0.75)
    assert metrics.to_dict(frame, value="error") == pytest.approx(MODEL)
    assert metrics.to_dict(metrics.to_frame(accuracies(MODEL))) == pytest.approx(accuracies(MODEL))


def test_bad_tables() -> None:
    with pytest.raises(ConfigError, match="divide percentages by 100"):
        metrics.mean_corruption_accuracy({("fog", 1): 85.0}, corruptions=["fog"], severities=[1])
    with pytest.raises(ConfigError, match="columns"):
        metrics.mce(pd.DataFrame({"corruption": ["fog"], "error": [0.1]}), REFERENCE)
    with pytest.raises(ConfigError, match="more than one row"):
        metrics.mean_corruption_accuracy(pd.DataFrame({"corruption": ["fog", "fog"], "severity": [1, 1],
                                                       "accuracy": [0.5, 0.6]}), corruptions=["fog"], severities=[1])
    with pytest.raises(ConfigError, match="keyed by"):
        metrics.mean_corruption_accuracy({"fog": 0.5})
    with pytest.raises(ConfigError, match="zero error"):
        metrics.mce(MODEL, {k: 0.0 for k in MODEL}, **PAIR)
