"""Paired confidence intervals: exact identities, coverage under few changed predictions, and input checks."""

from __future__ import annotations

import json
import math
from statistics import NormalDist

import numpy as np
import pytest

from moo_compress.errors import ConfigError
from moo_compress.evaluation import stats
from moo_compress.evaluation.stats import (
    Interval,
    pack_bits,
    paired_difference_interval,
    paired_mean_interval,
    ratio_index_interval,
    unpack_bits,
)

Z95 = NormalDist().inv_cdf(0.975)


def binary_differences(b: int, c: int, n: int) -> np.ndarray:
    """``b`` images the candidate alone gets right (+1), ``c`` it alone gets wrong (-1), the rest 0."""
    return np.concatenate([np.ones(b), -np.ones(c), np.zeros(n - b - c)])


def agresti_min(b: int, c: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Agresti & Min (2005): add 1/2 to each discordant count, Wald interval on n + 2 pairs."""
    b1, c1, n1 = b + 0.5, c + 0.5, n + 2
    centre = (b1 - c1) / n1
    half = z * math.sqrt(((b1 + c1) - (b1 - c1) ** 2 / n1) / n1 ** 2)
    return max(centre - half, -1.0), min(centre + half, 1.0)


def multinomial_probability(n: int, b: int, c: int, p_plus: float, p_minus: float) -> float:
    log = (math.lgamma(n + 1) - math.lgamma(b + 1) - math.lgamma(c + 1) - math.lgamma(n - b - c + 1)
           + b * math.log(p_plus) + c * math.log(p_minus) + (n - b - c) * math.log1p(-p_plus - p_minus))
    return math.exp(log)


def paired_coverage(n: int, p_plus: float, p_minus: float) -> tuple[float, float]:
    """Exact coverage of ``p_plus - p_minus`` by the adjusted and by the plain Wald 95% interval.

    Summing over the (b, c) discordant counts with their multinomial probabilities gives the coverage
    without Monte-Carlo error (counts beyond 6 standard deviations carry < 1e-9 of the mass).
    """
    truth = p_plus - p_minus
    expected = n * (p_plus + p_minus)
    limit = min(n, int(expected + 6 * math.sqrt(expected) + 10))
    adjusted = plain = mass = 0.0
    for b in range(limit + 1):
        for c in range(limit + 1 - b):
            p = multinomial_probability(n, b, c, p_plus, p_minus)
            d = binary_differences(b, c, n)
            adjusted += p * paired_mean_interval(d).contains(truth)
            half = Z95 * d.std() / math.sqrt(n)
            plain += p * (d.mean() - half <= truth <= d.mean() + half)
            mass += p
    assert mass == pytest.approx(1.0, abs=1e-9)
    return adjusted, plain


# --------------------------------------------------------------------------------------------------------------------
# pack_bits / unpack_bits
# --------------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("length", [0, 1, 7, 8, 9, 5000])
def test_pack_round_trip(length: int) -> None:
    correct = np.random.default_rng(length).random(length) < 0.7
    text = pack_bits(correct)
    assert text.isascii() and len(text) == 4 * math.ceil(math.ceil(length / 8) / 3)
    back = unpack_bits(text, length)
    assert back.dtype == np.bool_ and back.shape == (length,)
    np.testing.assert_array_equal(back, correct)


def test_pack_accepts_zero_one_integers() -> None:
    assert pack_bits(np.array([1, 0, 1])) == pack_bits(np.array([True, False, True]))


@pytest.mark.parametrize("text, n, match", [
    ("not base64!", 3, "not valid base64"),
    ("QQ=", 3, "not valid base64"),  # wrong padding
    ("QQ==", 9, "decode to 8 bits"),  # one byte, nine images
    ("", 1, "decode to 0 bits"),
    ("QQ==", -1, "non-negative integer"),
    (b"QQ==", 3, "base64 string"),
])
def test_unpack_rejects_malformed_text(text: str, n: int, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        unpack_bits(text, n)


@pytest.mark.parametrize("value, match", [
    (np.ones((2, 2), dtype=bool), "1-D"),
    (np.array([0, 2, 1]), "booleans"),
    (np.array([0.5]), "booleans"),
])
def test_pack_rejects_non_boolean_input(value: np.ndarray, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        pack_bits(value)


# --------------------------------------------------------------------------------------------------------------------
# Interval
# --------------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("interval, kwargs, text", [
    (Interval(-0.4, -0.9, 0.1, 0.95, 100), {}, "-0.4 [-0.9, +0.1]"),
    (Interval(97.3, 95.1, 99.5, 0.95, 100), {"signed": False}, "97.3 [95.1, 99.5]"),
    (Interval(97.3, 95.1, 99.5, 0.95, 100), {}, "+97.3 [+95.1, +99.5]"),
    (Interval(0.01234, -0.00001, 0.0456, 0.95, 10), {"digits": 3}, "+0.012 [0.000, +0.046]"),  # no "-0.000"
    (Interval(2.0, 1.0, 3.0, 0.9, 10), {"digits": 0, "signed": False}, "2 [1, 3]"),
    (Interval(math.nan, math.nan, math.nan, 0.95, 10), {}, "undefined"),
])
def test_interval_format(interval: Interval, kwargs: dict, text: str) -> None:
    assert interval.format(**kwargs) == text


def test_interval_contains_and_excludes_zero() -> None:
    interval = Interval(0.5, 0.1, 0.9, 0.95, 20)
    assert interval.contains(0.1) and interval.contains(0.9) and not interval.contains(0.95)
    assert interval.excludes_zero
    assert not Interval(0.0, -0.1, 0.1, 0.95, 20).excludes_zero
    assert not Interval(0.0, 0.0, 0.1, 0.95, 20).excludes_zero  # bounds are inclusive
    assert Interval(-0.5, -0.9, -0.1, 0.95, 20).excludes_zero
    undefined = Interval(math.nan, math.nan, math.nan, 0.95, 20)
    assert not undefined.contains(0.0) and not undefined.excludes_zero


def test_interval_to_dict_is_json_able() -> None:
    interval = paired_mean_interval(np.array([1, 0, 0, -1, 1]))
    data = interval.to_dict()
    assert set(data) == {"estimate", "low", "high", "level", "n"}
    assert all(type(data[k]) is float for k in ("estimate", "low", "high", "level")) and type(data["n"]) is int
    assert json.loads(json.dumps(data)) == data
    assert Interval(**data) == interval


@pytest.mark.parametrize("kwargs, match", [
    ({"level": 1.0}, "level"),
    ({"n": -1}, "n"),
    ({"low": 1.0, "high": 0.0}, "low"),
])
def test_interval_rejects_inconsistent_fields(kwargs: dict, match: str) -> None:
    fields = {"estimate": 0.5, "low": 0.0, "high": 1.0, "level": 0.95, "n": 3} | kwargs
    with pytest.raises(ConfigError, match=match):
        Interval(**fields)
    with pytest.raises(ConfigError, match="digits"):
        Interval(0.5, 0.0, 1.0, 0.95, 3).format(digits=-1)


# --------------------------------------------------------------------------------------------------------------------
# paired_mean_interval
# --------------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("b, c, n", [(0, 0, 10), (3, 1, 10), (1, 7, 250), (12, 30, 1000), (10, 0, 10), (40, 35, 80)])
@pytest.mark.parametrize("level", [0.9, 0.95])
def test_binary_differences_give_agresti_min(b: int, c: int, n: int, level: float) -> None:
    d = np.random.default_rng(n + b).permutation(binary_differences(b, c, n))
    interval = paired_mean_interval(d, level=level)
    low, high = agresti_min(b, c, n, z=NormalDist().inv_cdf(0.5 + level / 2))
    assert interval.low == pytest.approx(low, rel=1e-12, abs=1e-15)
    assert interval.high == pytest.approx(high, rel=1e-12, abs=1e-15)
    assert interval.estimate == pytest.approx((b - c) / n)
    assert (interval.n, interval.level) == (n, level)
    # The same from boolean correctness of the two models.
    reference = np.arange(n) % 2 == 0
    candidate = np.where(d > 0, True, np.where(d < 0, False, reference))
    reference = np.where(d > 0, False, np.where(d < 0, True, reference))
    assert paired_difference_interval(candidate, reference, level=level) == interval


def test_no_change_still_gives_a_width() -> None:
    interval = paired_mean_interval(np.zeros(500))
    assert interval.estimate == 0.0 and interval.contains(0.0)
    assert interval.high == pytest.approx(-interval.low) and interval.high > 0.0
    assert interval.high == pytest.approx(Z95 * math.sqrt(1.0 / 502 ** 2))  # one pseudo-discordance in 502 pairs


def test_scale_sets_the_pseudo_observations_and_the_clip() -> None:
    d = np.array([0.2, -0.1, 0.0, 0.0])
    default = paired_mean_interval(d)
    wider = paired_mean_interval(d, scale=1.0)
    assert wider.low < default.low and wider.high > default.high
    assert default.low >= -0.2 and default.high <= 0.2  # clipped to max(m, max|d|) = 0.2
    assert paired_mean_interval(np.ones(3)).high == 1.0  # clipped: the mean cannot exceed 1


def test_fractional_differences_match_the_formula() -> None:
    d = np.random.default_rng(3).uniform(-1, 1, size=40).round(2)
    m = np.abs(d).max()
    centre = d.sum() / 42
    half = Z95 * math.sqrt(((np.square(d).sum() + m * m) / 42 - centre ** 2) / 42)
    interval = paired_mean_interval(d)
    assert (interval.low, interval.high) == pytest.approx((centre - half, centre + half))
    assert interval.estimate == pytest.approx(d.mean())


def test_coverage_with_few_changed_predictions() -> None:
    # 250 images, the candidate fixes 0.4% and breaks 1.2% of them: about 4 discordant images per test set.
    adjusted, plain = paired_coverage(250, 0.004, 0.012)
    assert adjusted >= 0.93  # observed 0.943
    assert adjusted > plain  # plain Wald: 0.934 (and zero width whenever nothing changes)
    # Moderate change: 100 images, 5% fixed and 8% broken.
    adjusted, plain = paired_coverage(100, 0.05, 0.08)
    assert adjusted >= 0.93  # observed 0.956 (plain Wald 0.947)


def test_coverage_monte_carlo_matches() -> None:
    # The same few-changes setting by simulation, through paired_difference_interval on boolean outcomes.
    rng = np.random.default_rng(0)
    n, p_plus, p_minus, replications = 250, 0.004, 0.012, 2000
    reference = rng.random((replications, n)) < 0.9
    u = rng.random((replications, n))
    # Among images the reference gets wrong, the candidate fixes p_plus / 0.1; of those it gets right it breaks
    # p_minus / 0.9, so P(+1) = p_plus and P(-1) = p_minus.
    candidate = np.where(reference, u >= p_minus / 0.9, u < p_plus / 0.1)
    hits = [paired_difference_interval(candidate[r], reference[r]).contains(p_plus - p_minus)
            for r in range(replications)]
    assert np.mean(hits) >= 0.93  # observed 0.9485 (exact value 0.943)


@pytest.mark.parametrize("differences, kwargs, match", [
    (np.array([]), {}, "empty"),
    (np.array([0.0, np.nan]), {}, "non-finite"),
    (np.array([0.0, np.inf]), {}, "non-finite"),
    (np.zeros((2, 2)), {}, "1-D"),
    (np.array(["a"]), {}, "numeric"),
    (np.zeros(3), {"level": 1.0}, "level"),
    (np.zeros(3), {"level": 0.0}, "level"),
    (np.zeros(3), {"level": 95}, "level"),
    (np.zeros(3), {"scale": 0.0}, "scale"),
    (np.zeros(3), {"scale": math.nan}, "scale"),
])
def test_paired_mean_rejects_bad_input(differences: np.ndarray, kwargs: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        paired_mean_interval(differences, **kwargs)


def test_paired_difference_averages_cells_and_checks_shapes() -> None:
    rng = np.random.default_rng(5)
    candidate, reference = rng.random((30, 4)) < 0.6, rng.random((30, 4)) < 0.6
    expected = paired_mean_interval(candidate.mean(axis=1) - reference.mean(axis=1))
    assert paired_difference_interval(candidate, reference) == expected
    with pytest.raises(ConfigError, match=r"candidate has shape \(30, 4\).*reference has shape \(30,\)"):
        paired_difference_interval(candidate, reference[:, 0])
    with pytest.raises(ConfigError, match="1-D or 2-D"):
        paired_difference_interval(np.zeros((2, 2, 2)), np.zeros((2, 2, 2)))


# --------------------------------------------------------------------------------------------------------------------
# ratio_index_interval
# --------------------------------------------------------------------------------------------------------------------

def test_ratio_estimate_is_the_mean_of_column_ratios() -> None:
    rng = np.random.default_rng(7)
    numerator = rng.integers(0, 6, size=(50, 3)).astype(float)
    denominator = rng.integers(0, 6, size=(50, 3)).astype(float)
    interval = ratio_index_interval(numerator, denominator)
    assert interval.estimate == pytest.approx(100 * np.mean(numerator.sum(0) / denominator.sum(0)))
    assert interval.low < interval.estimate < interval.high and interval.n == 50
    assert ratio_index_interval(numerator, denominator, scale=1.0).estimate == pytest.approx(interval.estimate / 100)
    narrower = ratio_index_interval(numerator, denominator, level=0.8)
    assert interval.low < narrower.low < narrower.high < interval.high


def test_ratio_variance_matches_the_linearisation() -> None:
    rng = np.random.default_rng(8)
    numerator = rng.integers(0, 6, size=(40, 2)).astype(float)
    denominator = rng.integers(1, 6, size=(40, 2)).astype(float)
    ratios = numerator.sum(0) / denominator.sum(0)
    z = 50.0 * ((numerator - ratios * denominator) / denominator.mean(0)).sum(1)
    assert z.mean() == pytest.approx(0.0, abs=1e-9)
    half = Z95 * math.sqrt((np.square(z).sum() + np.abs(z).max() ** 2) / 42 ** 2)
    interval = ratio_index_interval(numerator, denominator)
    assert interval.high - interval.estimate == pytest.approx(half)
    assert interval.estimate - interval.low == pytest.approx(half)
    wider = ratio_index_interval(numerator, denominator, cell_weight=10 * np.abs(z).max())
    assert wider.high > interval.high


def test_ratio_of_identical_models_is_100() -> None:
    errors = (np.random.default_rng(9).random((200, 3, 5)) < 0.3).sum(-1).astype(float)
    interval = ratio_index_interval(errors, errors)
    assert interval.estimate == pytest.approx(100.0) and interval.contains(100.0)
    # No image differs, yet the interval has the width of one image changing in one cell.
    assert interval.high > 100.0 > interval.low
    one_image = (100.0 / 3) / (errors.sum(0) / 200).min()
    assert interval.high - 100.0 == pytest.approx(Z95 * one_image / 202)


def test_ratio_one_column_may_be_1d() -> None:
    numerator, denominator = np.array([1.0, 0.0, 2.0, 1.0]), np.array([1.0, 1.0, 1.0, 0.0])
    assert ratio_index_interval(numerator, denominator) == ratio_index_interval(numerator[:, None],
                                                                                denominator[:, None])


@pytest.mark.parametrize("column_sum", [0.0, -1.0])
def test_ratio_undefined_when_a_reference_column_sums_to_zero(column_sum: float) -> None:
    numerator = np.ones((4, 2))
    denominator = np.ones((4, 2))
    denominator[:, 1] = [column_sum, 0.0, 0.0, 0.0]
    interval = ratio_index_interval(numerator, denominator)
    assert math.isnan(interval.estimate) and math.isnan(interval.low) and math.isnan(interval.high)
    assert interval.format() == "undefined" and interval.n == 4


def _simulate_errors(rng: np.random.Generator, replications: int, n: int, f_break: float,
                     f_fix: float) -> tuple[np.ndarray, np.ndarray, float]:
    """Per-image errors summed over 5 severities for 3 corruptions, shape (replications, n, 3), and the true index.

    A latent "hard" image (30%) doubles every error probability, correlating the columns; the candidate
    repeats the reference's outcome except that it breaks a fraction ``f_break`` of the reference's
    correct predictions and fixes a fraction ``f_fix`` of its errors, correlating the pair.
    """
    base = np.array([[0.1, 0.2, 0.3, 0.4, 0.5], [0.05, 0.1, 0.15, 0.2, 0.3], [0.2, 0.25, 0.3, 0.35, 0.4]])
    p_type = np.array([0.7, 0.3])
    p_reference = np.minimum(base[None] * np.array([0.5, 2.0])[:, None, None], 0.95)  # (type, corruption, severity)
    p_candidate = p_reference * (1 - f_fix) + (1 - p_reference) * f_break
    expected_reference = np.einsum("t,tcs->c", p_type, p_reference)
    expected_candidate = np.einsum("t,tcs->c", p_type, p_candidate)
    truth = float(100 * np.mean(expected_candidate / expected_reference))
    hard = (rng.random((replications, n)) < p_type[1]).astype(int)
    probability = p_reference[hard]  # (replications, n, corruption, severity)
    reference = rng.random(probability.shape) < probability
    u = rng.random(probability.shape)
    candidate = np.where(reference, u >= f_fix, u < f_break)
    return candidate.sum(-1).astype(float), reference.sum(-1).astype(float), truth


@pytest.mark.parametrize("f_break, f_fix, observed", [(0.05, 0.1, 0.957), (0.005, 0.01, 0.923)])
def test_ratio_coverage(f_break: float, f_fix: float, observed: float) -> None:
    # n=500 images, 3 corruptions x 5 severities; the second case changes only about 1% of predictions.
    candidate, reference, truth = _simulate_errors(np.random.default_rng(1), 300, 500, f_break, f_fix)
    hits = [ratio_index_interval(candidate[r], reference[r]).contains(truth) for r in range(len(candidate))]
    assert np.mean(hits) >= 0.9, f"coverage {np.mean(hits):.3f}, {observed} observed when written"


@pytest.mark.parametrize("numerator, denominator, kwargs, match", [
    (np.ones((3, 2)), np.ones((3, 3)), {}, r"numerator has shape \(3, 2\), denominator has shape \(3, 3\)"),
    (np.ones((0, 2)), np.ones((0, 2)), {}, "empty"),
    (np.ones((2, 2, 2)), np.ones((2, 2, 2)), {}, "1-D or 2-D"),
    (np.array([[1.0, np.nan]]), np.ones((1, 2)), {}, "numerator holds 1 non-finite"),
    (np.ones((1, 2)), np.array([[1.0, np.inf]]), {}, "denominator holds 1 non-finite"),
    (np.ones((2, 2)), np.ones((2, 2)), {"level": 1.5}, "level"),
    (np.ones((2, 2)), np.ones((2, 2)), {"scale": -100.0}, "scale"),
    (np.ones((2, 2)), np.ones((2, 2)), {"cell_weight": 0.0}, "cell_weight"),
])
def test_ratio_rejects_bad_input(numerator: np.ndarray, denominator: np.ndarray, kwargs: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        ratio_index_interval(numerator, denominator, **kwargs)


def test_public_names() -> None:
    assert set(stats.__all__) == {"Interval", "pack_bits", "unpack_bits", "paired_mean_interval",
                                  "paired_difference_interval", "ratio_index_interval"}
    for name in stats.__all__:
        assert getattr(stats, name).__doc__
