"""Paired confidence intervals for a compressed model ("candidate") against a reference on the same images.

Per-image outcomes (e.g. whether each test image is classified correctly) are kept for both models so
that intervals can be *paired*: the image-to-image variation both models share cancels, and what is
left is driven by the images on which their predictions differ. When only a few predictions change,
a plain percentile bootstrap or a plain Wald interval under-covers (with no change at all both have
zero width). The intervals here therefore use an adjusted Wald interval with pseudo-observations:

- to the ``n`` per-image values ``d_i`` add ``+m`` and ``-m`` with weight 1/2 each and ``0`` with
  weight 1 (``n' = n + 2``), where ``m`` is the size of one change;
- centre ``c = sum_i d_i / n'``, variance ``v = ((sum_i d_i^2 + m^2) / n' - c^2) / n'``;
- interval ``c +- z * sqrt(v)`` with ``z`` the two-sided normal quantile of ``level``.

For paired binary outcomes (``d_i`` in {-1, 0, +1}, ``m = 1``) this is exactly the Agresti & Min
(2005) interval for a difference of paired proportions, which adds 1/2 to each discordant count:
``b' = b + 1/2``, ``c' = c + 1/2``, centre ``(b' - c') / n'`` and variance
``((b' + c') - (b' - c')^2 / n') / n'^2``.

Per-image outcomes are stored compactly with :func:`pack_bits` / :func:`unpack_bits`.
"""

from __future__ import annotations

import base64
import binascii
import math
from dataclasses import dataclass
from numbers import Real
from statistics import NormalDist

import numpy as np

from moo_compress.errors import ConfigError

__all__ = [
    "Interval",
    "pack_bits",
    "unpack_bits",
    "paired_mean_interval",
    "paired_difference_interval",
    "ratio_index_interval",
]


# ---------------------------------------------------------------------------------------------------------------------
# Compact storage of per-image outcomes
# ---------------------------------------------------------------------------------------------------------------------

def pack_bits(correct: np.ndarray) -> str:
    """Pack a 1-D boolean array into a compact ASCII string (``np.packbits`` then standard base64).

    Args:
        correct: One boolean per image (integer arrays holding only 0 and 1 are accepted too).

    Returns:
        The base64 text; ``unpack_bits(text, len(correct))`` gives the array back. An empty array
        gives the empty string.

    Raises:
        ConfigError: If the array is not 1-D or holds values other than booleans / 0 / 1.
    """
    array = np.asarray(correct)
    if array.ndim != 1:
        raise ConfigError(f"pack_bits needs a 1-D boolean array, got shape {array.shape}")
    if array.dtype != np.bool_:
        if array.size and not (np.issubdtype(array.dtype, np.number) and np.isin(array, (0, 1)).all()):
            raise ConfigError(f"pack_bits needs booleans (or 0/1), got dtype {array.dtype} with other values")
        array = array.astype(bool)
    return base64.b64encode(np.packbits(array).tobytes()).decode("ascii")


def unpack_bits(text: str, n: int) -> np.ndarray:
    """Unpack the text written by :func:`pack_bits` into a boolean array of length ``n``.

    Args:
        text: Base64 text (standard alphabet) of the packed bits.
        n: Number of images, i.e. the length of the array that was packed.

    Returns:
        A 1-D boolean array of length ``n``.

    Raises:
        ConfigError: If ``text`` is not a string of valid base64, if it decodes to fewer than ``n``
            bits, or if ``n`` is not a non-negative integer.
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ConfigError(f"unpack_bits needs n, the number of images, as a non-negative integer; got {n!r}")
    if not isinstance(text, str):
        raise ConfigError(f"unpack_bits needs the packed bits as a base64 string, got {type(text).__name__}")
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError) as error:
        raise ConfigError(f"packed bits are not valid base64 ({error}): {text[:40]!r}") from None
    bits = np.unpackbits(np.frombuffer(raw, dtype=np.uint8))
    if bits.size < n:
        raise ConfigError(f"packed bits decode to {bits.size} bits ({len(raw)} bytes), fewer than the {n} images "
                          "expected; the text is truncated or belongs to another evaluation")
    return bits[:n].astype(bool)


# ---------------------------------------------------------------------------------------------------------------------
# Interval
# ---------------------------------------------------------------------------------------------------------------------

def _format_number(value: float, digits: int, signed: bool) -> str:
    """``value`` with ``digits`` decimals; a leading ``+`` for positives when ``signed``; never ``-0.0``."""
    if math.isnan(value):
        return "nan"
    text = f"{value:.{digits}f}"
    if float(text) == 0.0:
        return text.lstrip("-")
    return f"+{text}" if signed and value > 0 else text


@dataclass(frozen=True)
class Interval:
    """A point estimate with a two-sided confidence interval.

    Args:
        estimate: Point estimate (NaN when undefined).
        low: Lower bound (NaN when undefined).
        high: Upper bound (NaN when undefined).
        level: Confidence level, e.g. 0.95.
        n: Number of images the interval is computed from.

    Raises:
        ConfigError: If ``level`` is not in (0, 1), ``n`` is negative, or ``low > high``.
    """

    estimate: float
    low: float
    high: float
    level: float
    n: int

    def __post_init__(self) -> None:
        _check_level(self.level)
        if self.n < 0:
            raise ConfigError(f"Interval n (the number of images) must be >= 0, got {self.n}")
        if self.low > self.high:  # False when either bound is NaN
            raise ConfigError(f"Interval low ({self.low}) must not exceed high ({self.high})")

    def contains(self, value: float) -> bool:
        """Whether ``low <= value <= high`` (bounds included; False when the interval is undefined).

        Args:
            value: The value to test.

        Returns:
            True if the value lies in the closed interval.
        """
        return bool(self.low <= value <= self.high)

    @property
    def excludes_zero(self) -> bool:
        """True when the whole interval lies strictly above or strictly below 0 (False when undefined)."""
        return bool(self.low > 0.0 or self.high < 0.0)

    def to_dict(self) -> dict[str, float | int]:
        """The fields as plain Python numbers (NaN stays ``float('nan')``).

        Returns:
            ``{"estimate", "low", "high", "level"}`` as floats and ``"n"`` as an int.
        """
        return {"estimate": float(self.estimate), "low": float(self.low), "high": float(self.high),
                "level": float(self.level), "n": int(self.n)}

    def format(self, digits: int = 1, signed: bool = True) -> str:
        """The interval as text, e.g. ``"-0.4 [-0.9, +0.1]"`` or (unsigned) ``"97.3 [95.1, 99.5]"``.

        Args:
            digits: Decimals to show.
            signed: Put ``+`` before positive numbers (estimate and bounds), as suits differences.

        Returns:
            ``"estimate [low, high]"``, or ``"undefined"`` when the estimate is NaN.

        Raises:
            ConfigError: If ``digits`` is not a non-negative integer.
        """
        if isinstance(digits, bool) or not isinstance(digits, (int, np.integer)) or digits < 0:
            raise ConfigError(f"digits must be a non-negative integer, got {digits!r}")
        if math.isnan(self.estimate):
            return "undefined"
        parts = [_format_number(float(x), int(digits), signed) for x in (self.estimate, self.low, self.high)]
        return f"{parts[0]} [{parts[1]}, {parts[2]}]"


# ---------------------------------------------------------------------------------------------------------------------
# Checks and the adjusted Wald interval
# ---------------------------------------------------------------------------------------------------------------------

def _check_level(level: float) -> float:
    """``level`` as a float, checked to lie strictly between 0 and 1."""
    if isinstance(level, bool) or not isinstance(level, Real) or not 0.0 < float(level) < 1.0:
        raise ConfigError(f"level must be a confidence level strictly between 0 and 1 (e.g. 0.95), got {level!r}")
    return float(level)


def _z_value(level: float) -> float:
    """Two-sided standard normal quantile of ``level`` (1.96 for 0.95)."""
    return NormalDist().inv_cdf(0.5 + _check_level(level) / 2.0)


def _check_positive(value: float | None, name: str) -> float | None:
    """``value`` as a float, checked to be finite and > 0; None passes through."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value) or value <= 0:
        raise ConfigError(f"{name} must be a finite number > 0 (or None for the default), got {value!r}")
    return float(value)


def _as_finite(values: np.ndarray, name: str, ndims: tuple[int, ...]) -> np.ndarray:
    """``values`` as a float64 array with one of ``ndims`` dimensions, non-empty and finite."""
    array = np.asarray(values)
    if array.dtype == object or not (np.issubdtype(array.dtype, np.number) or array.dtype == np.bool_):
        raise ConfigError(f"{name} must be a numeric array, got dtype {array.dtype}")
    array = array.astype(np.float64)
    if array.ndim not in ndims:
        wanted = " or ".join(f"{d}-D" for d in ndims)
        raise ConfigError(f"{name} must be a {wanted} array, got shape {array.shape}")
    if array.size == 0:
        raise ConfigError(f"{name} is empty (shape {array.shape}); an interval needs at least one image")
    if not np.isfinite(array).all():
        raise ConfigError(f"{name} holds {int((~np.isfinite(array)).sum())} non-finite values (NaN or inf)")
    return array


def _adjusted_moments(values: np.ndarray, m: float) -> tuple[float, float]:
    """Centre and variance of the mean after adding pseudo-observations +m, -m (weight 1/2 each) and 0 (weight 1).

    Args:
        values: The per-image values (1-D, finite).
        m: Magnitude of the pseudo-observations.

    Returns:
        ``(c, v)`` with ``c = sum(values) / (n + 2)`` and
        ``v = ((sum(values**2) + m**2) / (n + 2) - c**2) / (n + 2)``, clipped at 0.
    """
    total = values.size + 2.0
    centre = float(values.sum()) / total
    second = (float(np.square(values).sum()) + m * m) / total
    return centre, max(second - centre * centre, 0.0) / total


# ---------------------------------------------------------------------------------------------------------------------
# Public intervals
# ---------------------------------------------------------------------------------------------------------------------

def _paired_arrays(a: np.ndarray, b: np.ndarray, names: tuple[str, str], problem: str) -> tuple[np.ndarray, np.ndarray]:
    """Two finite 1-D or 2-D arrays of the same shape; the error names both shapes."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        raise ConfigError(f"{problem}: {names[0]} has shape {a.shape}, {names[1]} has shape {b.shape}")
    return _as_finite(a, names[0], (1, 2)), _as_finite(b, names[1], (1, 2))


def paired_mean_interval(differences: np.ndarray, *, scale: float | None = None, level: float = 0.95) -> Interval:
    """Interval for the mean of paired per-image differences (candidate minus reference).

    The estimate is the plain mean of ``differences``; the interval is the pseudo-observation adjusted
    Wald interval of the module docstring, clipped to ``[-r, r]`` with ``r = max(m, max|d_i|)``. For
    binary differences in {-1, 0, +1} it equals the Agresti & Min (2005) interval. It never has zero
    width, not even when no prediction changes.

    Args:
        differences: One difference per image, e.g. 0/+-1 for clean correctness or a mean over
            corruption cells in [-1, 1].
        scale: Magnitude ``m`` of one change (the pseudo-observations). Default: ``max|d_i|``, or 1
            when every difference is 0.
        level: Confidence level in (0, 1).

    Returns:
        The :class:`Interval` (``n`` is the number of images).

    Raises:
        ConfigError: If ``differences`` is not a non-empty, finite 1-D array, if ``scale`` is not
            > 0, or if ``level`` is not in (0, 1).
    """
    d = _as_finite(differences, "differences", (1,))
    z = _z_value(level)
    given = _check_positive(scale, "scale")
    largest = float(np.abs(d).max())
    m = given if given is not None else (largest if largest > 0 else 1.0)
    centre, variance = _adjusted_moments(d, m)
    half = z * math.sqrt(variance)
    bound = max(m, largest)
    low, high = max(centre - half, -bound), min(centre + half, bound)
    return Interval(estimate=float(d.mean()), low=float(low), high=float(high), level=float(level), n=int(d.size))


def paired_difference_interval(candidate: np.ndarray, reference: np.ndarray, *, level: float = 0.95) -> Interval:
    """Interval for the mean per-image score of ``candidate`` minus that of ``reference`` (same images).

    Args:
        candidate: Per-image scores of the candidate, bool or float, shape ``(n,)`` or ``(n, k)``;
            a 2-D array is first averaged over axis 1 (e.g. over corruption cells).
        reference: Per-image scores of the reference model, same shape as ``candidate``.
        level: Confidence level in (0, 1).

    Returns:
        ``paired_mean_interval(candidate - reference, level=level)``.

    Raises:
        ConfigError: If the shapes differ (the message names both), the arrays are not 1-D or 2-D,
            are empty, or hold non-finite values, or ``level`` is not in (0, 1).
    """
    cand, ref = _paired_arrays(candidate, reference, ("candidate", "reference"),
                               "candidate and reference must score the same images")
    if cand.ndim == 2:
        cand, ref = cand.mean(axis=1), ref.mean(axis=1)
    return paired_mean_interval(cand - ref, level=level)


def ratio_index_interval(numerator: np.ndarray, denominator: np.ndarray, *, level: float = 0.95,
                         scale: float = 100.0, cell_weight: float | None = None) -> Interval:
    """Interval for a CE-style index ``I = scale * mean_c (sum_i numerator[i, c] / sum_i denominator[i, c])``.

    With per-image errors summed over severities of the candidate as ``numerator`` and of the
    reference as ``denominator`` this is mCE; for relative mCE pass errors minus clean error. The
    interval linearises the ratio of sums: with ``CE_c = N_c / D_c`` (column sums) and
    ``Rbar_c = D_c / n``, each image has influence
    ``z_i = (scale / C) * sum_c (numerator[i, c] - CE_c * denominator[i, c]) / Rbar_c`` (mean 0), and
    the interval is ``I +- z * sqrt(v)`` with ``v`` the pseudo-observation adjusted variance of the
    ``z_i`` (centre 0). It is not clipped.

    Args:
        numerator: ``(n, C)`` array, one row per image and one column per corruption (a 1-D array is
            one column).
        denominator: Array of the same shape.
        level: Confidence level in (0, 1).
        scale: Factor of the index (100 gives percent).
        cell_weight: Magnitude ``m`` of the pseudo-observations. Default: ``max|z_i|``, or when every
            ``z_i`` is 0 the influence of one image changing in one cell, ``(scale / C) / min_c Rbar_c``.

    Returns:
        The :class:`Interval`; estimate, low and high are NaN when some column's denominator sum is
        <= 0 (the index is undefined there).

    Raises:
        ConfigError: If the shapes differ or are not 1-D/2-D, the arrays are empty or hold
            non-finite values, ``scale`` or ``cell_weight`` is not > 0, or ``level`` is not in (0, 1).
    """
    num, den = _paired_arrays(numerator, denominator, ("numerator", "denominator"),
                              "numerator and denominator must have the same shape (images x corruptions)")
    if num.ndim == 1:
        num, den = num[:, None], den[:, None]
    z = _z_value(level)
    factor = _check_positive(scale, "scale")
    given = _check_positive(cell_weight, "cell_weight")
    n, columns = num.shape
    den_sums = den.sum(axis=0)
    if (den_sums <= 0).any():
        nan = float("nan")
        return Interval(estimate=nan, low=nan, high=nan, level=float(level), n=int(n))
    ratios = num.sum(axis=0) / den_sums
    estimate = float(factor * ratios.mean())
    mean_den = den_sums / n
    influence = (factor / columns) * ((num - ratios * den) / mean_den).sum(axis=1)
    largest = float(np.abs(influence).max())
    if given is not None:
        m = given
    else:
        m = largest if largest > 0 else float((factor / columns) / mean_den.min())
    _, variance = _adjusted_moments(influence - influence.mean(), m)
    half = z * math.sqrt(variance)
    return Interval(estimate=estimate, low=estimate - half, high=estimate + half, level=float(level), n=int(n))
