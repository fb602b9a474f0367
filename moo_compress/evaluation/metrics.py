"""Robustness metrics of the corruption-robustness literature, over per-(corruption, severity) tables.

A table is either a mapping ``{(corruption, severity): value}`` or a pandas DataFrame with columns
``corruption``, ``severity`` and ``error`` and/or ``accuracy`` (one row per pair; extra columns are
ignored). Values are fractions in [0, 1]; ``error = 1 - accuracy``. A mapping holds whatever the
argument's name says (accuracies or errors); a DataFrame may hold either column, the other is derived.

Notation: ``A(c, s)`` / ``E(c, s)`` are accuracy / error under corruption ``c`` at severity ``s``,
``E_clean`` the clean error, ``ref`` the reference model (e.g. the uncompressed baseline),
``C`` the corruptions (default the 15 benchmark ones; ``corruptions="all"`` for 19) and ``S`` the
severities (default 1..5).

- mean corruption accuracy: ``mCA = mean_{c in C, s in S} A(c, s)`` (also per family, per severity);
- corruption error: ``CE_c = sum_s E(c, s) / sum_s E_ref(c, s)``; ``mCE = 100 * mean_c CE_c``;
- relative: ``relCE_c = sum_s (E(c, s) - E_clean) / sum_s (E_ref(c, s) - E_ref_clean)``;
  ``relative mCE = 100 * mean_c relCE_c``;
- unnormalised mCE (the AugMix convention): ``100 * (1 - mCA)``, i.e. 100 - mCA in percent.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd

from moo_compress.data.corruptions import CORRUPTION_FAMILIES, FAMILIES, check_severities, resolve_corruptions
from moo_compress.errors import ConfigError

__all__ = [
    "Table",
    "to_frame",
    "to_dict",
    "mean_corruption_accuracy",
    "accuracy_by_corruption",
    "accuracy_by_family",
    "accuracy_by_severity",
    "corruption_errors",
    "mce",
    "relative_corruption_errors",
    "relative_mce",
    "unnormalised_mce",
]

Table = Mapping[tuple[str, int], float] | pd.DataFrame
Corruptions = str | Iterable[str] | None

_COLUMNS = ("corruption", "severity", "accuracy", "error")


def _as_dict(table: Table, value: str, *, argument: str) -> dict[tuple[str, int], float]:
    """``{(corruption, severity): value}`` with ``value`` 'accuracy' or 'error', checked to lie in [0, 1]."""
    other = "error" if value == "accuracy" else "accuracy"
    if isinstance(table, pd.DataFrame):
        missing = {"corruption", "severity"} - set(table.columns)
        if missing or not ({value, other} & set(table.columns)):
            raise ConfigError(f"{argument} must have columns corruption, severity and {value} (or {other}); "
                              f"got {list(table.columns)}")
        column = table[value] if value in table.columns else 1.0 - table[other]
        keys = list(zip(table["corruption"].astype(str), table["severity"].astype(int), strict=True))
        if len(set(keys)) != len(keys):
            raise ConfigError(f"{argument} has more than one row for some (corruption, severity)")
        result = dict(zip(keys, column.astype(float), strict=True))
    elif isinstance(table, Mapping):
        result = {}
        for key, number in table.items():
            if not (isinstance(key, tuple) and len(key) == 2):
                raise ConfigError(f"{argument} must be keyed by (corruption, severity) pairs; got key {key!r}")
            result[(str(key[0]), int(key[1]))] = float(number)
    else:
        raise ConfigError(f"{argument} must be a dict keyed by (corruption, severity) or a DataFrame; "
                          f"got {type(table).__name__}")
    bad = [k for k, v in result.items() if not 0.0 <= v <= 1.0]
    if bad:
        raise ConfigError(f"{argument} holds values outside [0, 1] (e.g. {bad[0]}: {result[bad[0]]}); tables hold "
                          "fractions, divide percentages by 100")
    return result


def to_dict(table: Table, *, value: str = "accuracy") -> dict[tuple[str, int], float]:
    """The table as ``{(corruption, severity): value}``, ``value`` being ``accuracy`` or ``error``."""
    if value not in ("accuracy", "error"):
        raise ConfigError(f"value must be 'accuracy' or 'error', got {value!r}")
    return _as_dict(table, value, argument="table")


def to_frame(table: Table, *, value: str = "accuracy") -> pd.DataFrame:
    """The table as a tidy DataFrame with columns corruption, severity, accuracy, error (and family).

    A mapping is read as holding ``value`` (``accuracy`` or ``error``); rows follow the reference order.
    """
    accuracies = to_dict(table, value="accuracy") if isinstance(table, pd.DataFrame) else (
        {k: (v if value == "accuracy" else 1.0 - v) for k, v in to_dict(table, value=value).items()}
    )
    order = {name: i for i, name in enumerate(CORRUPTION_FAMILIES)}
    keys = sorted(accuracies, key=lambda k: (order.get(k[0], len(order)), k[0], k[1]))
    return pd.DataFrame({
        "corruption": [k[0] for k in keys],
        "severity": [k[1] for k in keys],
        "accuracy": [accuracies[k] for k in keys],
        "error": [1.0 - accuracies[k] for k in keys],
        "family": [CORRUPTION_FAMILIES.get(k[0], "") for k in keys],
    })


def _grid(values: Mapping[tuple[str, int], float], corruptions: Corruptions, severities: Iterable[int] | None,
          *, argument: str) -> tuple[tuple[str, ...], tuple[int, ...], np.ndarray]:
    names = resolve_corruptions("benchmark" if corruptions is None else corruptions)
    sevs = check_severities(severities)
    missing = [(c, s) for c in names for s in sevs if (c, s) not in values]
    if missing:
        raise ConfigError(f"{argument} lacks {len(missing)} of the {len(names) * len(sevs)} (corruption, severity) "
                          f"entries needed, e.g. {missing[:3]}; evaluate them or pass corruptions=/severities=")
    return names, sevs, np.array([[values[(c, s)] for s in sevs] for c in names], dtype=np.float64)


def mean_corruption_accuracy(accuracies: Table, *, corruptions: Corruptions = "benchmark",
                             severities: Iterable[int] | None = None) -> float:
    """Mean corruption accuracy ``mCA = mean_{c, s} A(c, s)``, a fraction in [0, 1].

    Args:
        accuracies: Accuracy table (a mapping holds accuracies; a DataFrame may hold errors instead).
        corruptions: ``benchmark`` (the 15, default), ``all`` (19), a family, or names.
        severities: Default 1..5.
    """
    return float(_grid(_as_dict(accuracies, "accuracy", argument="accuracies"), corruptions, severities,
                       argument="accuracies")[2].mean())


def accuracy_by_corruption(accuracies: Table, *, corruptions: Corruptions = "benchmark",
                           severities: Iterable[int] | None = None) -> dict[str, float]:
    """``mean_s A(c, s)`` for every corruption ``c``."""
    names, _, grid = _grid(_as_dict(accuracies, "accuracy", argument="accuracies"), corruptions, severities,
                           argument="accuracies")
    return {c: float(row.mean()) for c, row in zip(names, grid, strict=True)}


def accuracy_by_family(accuracies: Table, *, corruptions: Corruptions = "benchmark",
                       severities: Iterable[int] | None = None) -> dict[str, float]:
    """``mean_{c in family, s} A(c, s)`` for every family (noise, blur, weather, digital) among ``corruptions``."""
    names, _, grid = _grid(_as_dict(accuracies, "accuracy", argument="accuracies"), corruptions, severities,
                           argument="accuracies")
    families = np.array([CORRUPTION_FAMILIES[c] for c in names])
    return {f: float(grid[families == f].mean()) for f in FAMILIES if (families == f).any()}


def accuracy_by_severity(accuracies: Table, *, corruptions: Corruptions = "benchmark",
                         severities: Iterable[int] | None = None) -> dict[int, float]:
    """``mean_c A(c, s)`` for every severity ``s``."""
    _, sevs, grid = _grid(_as_dict(accuracies, "accuracy", argument="accuracies"), corruptions, severities,
                          argument="accuracies")
    return {s: float(col.mean()) for s, col in zip(sevs, grid.T, strict=True)}


def corruption_errors(errors: Table, reference_errors: Table, *, corruptions: Corruptions = "benchmark",
                      severities: Iterable[int] | None = None) -> dict[str, float]:
    """``CE_c = sum_s E(c, s) / sum_s E_ref(c, s)`` for every corruption (a ratio; 1 = as the reference).

    Raises:
        ConfigError: if the reference has zero error summed over a corruption's severities.
    """
    names, _, grid = _grid(_as_dict(errors, "error", argument="errors"), corruptions, severities, argument="errors")
    _, _, ref = _grid(_as_dict(reference_errors, "error", argument="reference_errors"), corruptions, severities,
                      argument="reference_errors")
    numerator, denominator = grid.sum(axis=1), ref.sum(axis=1)
    zero = [c for c, d in zip(names, denominator, strict=True) if d <= 0]
    if zero:
        raise ConfigError(f"the reference model has zero error on {zero}, so CE is undefined there")
    return {c: float(n / d) for c, n, d in zip(names, numerator, denominator, strict=True)}


def mce(errors: Table, reference_errors: Table, *, corruptions: Corruptions = "benchmark",
        severities: Iterable[int] | None = None) -> float:
    """Mean corruption error ``mCE = 100 * mean_c CE_c``, ``CE_c = sum_s E(c, s) / sum_s E_ref(c, s)``.

    100 means as robust as the reference model; lower is better.

    Args:
        errors: Error table of the model (a mapping holds errors; a DataFrame may hold accuracies).
        reference_errors: Error table of the reference model (e.g. the uncompressed baseline).
        corruptions: ``benchmark`` (the 15, default), ``all`` (19), a family, or names.
        severities: Default 1..5.
    """
    return 100.0 * float(np.mean(list(corruption_errors(errors, reference_errors, corruptions=corruptions,
                                                          severities=severities).values())))


def relative_corruption_errors(errors: Table, clean_error: float, reference_errors: Table,
                               reference_clean_error: float, *, corruptions: Corruptions = "benchmark",
                               severities: Iterable[int] | None = None) -> dict[str, float]:
    """``relCE_c = sum_s (E(c, s) - E_clean) / sum_s (E_ref(c, s) - E_ref_clean)`` for every corruption.

    Raises:
        ConfigError: if a clean error is outside [0, 1], or the reference loses no accuracy under a
            corruption (non-positive denominator).
    """
    for name, value in (("clean_error", clean_error), ("reference_clean_error", reference_clean_error)):
        if not 0.0 <= float(value) <= 1.0:
            raise ConfigError(f"{name} must be a fraction in [0, 1], got {value!r}")
    names, _, grid = _grid(_as_dict(errors, "error", argument="errors"), corruptions, severities, argument="errors")
    _, _, ref = _grid(_as_dict(reference_errors, "error", argument="reference_errors"), corruptions, severities,
                      argument="reference_errors")
    numerator = (grid - float(clean_error)).sum(axis=1)
    denominator = (ref - float(reference_clean_error)).sum(axis=1)
    flat = [c for c, d in zip(names, denominator, strict=True) if d <= 0]
    if flat:
        raise ConfigError(f"the reference model's error does not rise above its clean error under {flat}, "
                          "so relative CE is undefined there")
    return {c: float(n / d) for c, n, d in zip(names, numerator, denominator, strict=True)}


def relative_mce(errors: Table, clean_error: float, reference_errors: Table, reference_clean_error: float, *,
                 corruptions: Corruptions = "benchmark", severities: Iterable[int] | None = None) -> float:
    """Relative mCE ``= 100 * mean_c relCE_c`` with
    ``relCE_c = sum_s (E(c, s) - E_clean) / sum_s (E_ref(c, s) - E_ref_clean)``.

    It measures how much accuracy is lost to corruptions, relative to the reference's loss.

    Args:
        errors: Error table of the model.
        clean_error: The model's clean error (fraction).
        reference_errors: Error table of the reference model.
        reference_clean_error: The reference model's clean error (fraction).
        corruptions: ``benchmark`` (the 15, default), ``all`` (19), a family, or names.
        severities: Default 1..5.
    """
    return 100.0 * float(np.mean(list(relative_corruption_errors(
        errors, clean_error, reference_errors, reference_clean_error, corruptions=corruptions,
        severities=severities).values())))


def unnormalised_mce(accuracies: Table, *, corruptions: Corruptions = "benchmark",
                     severities: Iterable[int] | None = None) -> float:
    """Unnormalised mCE (AugMix convention) ``= 100 * (1 - mCA)``: the mean corruption error in percent."""
    return 100.0 * (1.0 - mean_corruption_accuracy(accuracies, corruptions=corruptions, severities=severities))
