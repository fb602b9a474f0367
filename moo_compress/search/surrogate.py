"""Surrogate screening: rank NSGA-II's offspring before any test image is spent on them.

NSGA-II proposes ``candidates`` times as many offspring as it evaluates. A Gaussian process per
objective (scikit-learn's :class:`~sklearn.gaussian_process.GaussianProcessRegressor`: a Matern-5/2
kernel with one length scale per gene, plus white noise for the measurement noise, hyper-parameters
fitted by marginal likelihood), trained on every plan evaluated so far (its objectives at its highest
rung), predicts each proposal's objectives and their uncertainty. Proposals are then chosen one at a
time by the hypervolume they would add to the current front at their *optimistic* prediction
(``mean - optimism * sd``; objectives are minimised), each chosen proposal joining the front at its
mean prediction before the next choice ("kriging believer" batch selection), so a generation does not
spend its slots on near-copies. Proposals predicted to violate a constraint even optimistically come
last. The surrogate chooses *which* plans are measured; every number reported is still a measurement.

``benchmarks/bench_fidelity.py`` measures what it buys (RESULTS.md, "fidelity").
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from moo_compress.errors import ConfigError

__all__ = ["Surrogate", "choose_offspring"]


@dataclass(frozen=True)
class Surrogate:
    """Surrogate screening of offspring (the ``algorithm.surrogate`` block of a search space).

    Attributes:
        candidates: Offspring proposed per offspring evaluated; ``1`` turns screening off (NSGA-II's
            offspring are evaluated as proposed).
        optimism: Standard deviations subtracted from each predicted (minimised) objective when
            proposals are ranked: larger explores more, 0 trusts the prediction.
    """

    candidates: int = 4
    optimism: float = 1.0

    def __post_init__(self) -> None:
        if isinstance(self.candidates, bool) or not isinstance(self.candidates, (int, np.integer)) \
                or self.candidates < 1:
            raise ConfigError(f"algorithm.surrogate.candidates must be a positive integer (1 = off), "
                              f"got {self.candidates!r}")
        if isinstance(self.optimism, bool) or not isinstance(self.optimism, (int, float)) \
                or not np.isfinite(self.optimism) or self.optimism < 0:
            raise ConfigError(f"algorithm.surrogate.optimism must be a number >= 0, got {self.optimism!r}")
        object.__setattr__(self, "candidates", int(self.candidates))
        object.__setattr__(self, "optimism", float(self.optimism))

    @property
    def enabled(self) -> bool:
        """Whether offspring are screened."""
        return self.candidates > 1

    @classmethod
    def parse(cls, value: Any) -> Surrogate:
        """From a search-space value: a mapping, ``off``/``false`` (no screening) or ``on``/``true``."""
        if value is None or value is True or value == "on":
            return cls()
        if value is False or value == "off":
            return cls(candidates=1)
        if not isinstance(value, dict):
            raise ConfigError(f"algorithm.surrogate must be 'off', 'on' or a mapping with keys "
                              f"['candidates', 'optimism'], got {value!r}")
        unknown = sorted(set(value) - {"candidates", "optimism"})
        if unknown:
            raise ConfigError(f"unknown key(s) {unknown} in algorithm.surrogate; "
                              "valid keys: ['candidates', 'optimism']")
        return cls(**value)

    def to_dict(self) -> dict[str, Any]:
        """YAML/JSON-able form."""
        return {"candidates": self.candidates, "optimism": self.optimism}


def _predict(X: np.ndarray, Y: np.ndarray, Xq: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation of a Gaussian process per column of ``Y`` at ``Xq``."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.gaussian_process import GaussianProcessRegressor
    from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel

    mean = np.zeros((len(Xq), Y.shape[1]))
    sd = np.zeros_like(mean)
    for j in range(Y.shape[1]):
        y = Y[:, j]
        centre, spread = float(y.mean()), float(y.std())
        if spread <= 1e-12:  # a constant objective so far: predict it, with no uncertainty
            mean[:, j] = centre
            continue
        kernel = ConstantKernel(1.0) * Matern(length_scale=np.ones(X.shape[1]), nu=2.5) + WhiteKernel(0.01)
        model = GaussianProcessRegressor(kernel, n_restarts_optimizer=0, random_state=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit(X, (y - centre) / spread)
        m, s = model.predict(Xq, return_std=True)
        mean[:, j] = m * spread + centre
        sd[:, j] = s * spread
    return mean, sd


def _hypervolume(points: np.ndarray, ref: np.ndarray) -> float:
    from pymoo.indicators.hv import HV

    if not len(points):
        return 0.0
    return float(HV(ref_point=ref)(np.minimum(points, ref - 1e-9)))


def choose_offspring(X_seen: np.ndarray, F_seen: np.ndarray, G_seen: np.ndarray | None, X_new: np.ndarray,
                     n: int, surrogate: Surrogate, scale: np.ndarray) -> list[int]:
    """Indices of the ``n`` proposals in ``X_new`` to evaluate (see the module docstring).

    Args:
        X_seen: Genes of the plans evaluated so far (failed ones left out), ``(m, d)``.
        F_seen: Their objectives (minimised), ``(m, k)``.
        G_seen: Their constraint values (``<= 0`` feasible), ``(m, c)``, or None.
        X_new: Genes of the proposals, ``(q, d)``.
        n: How many to choose.
        surrogate: Screening settings.
        scale: Per-gene range, so that every gene spans [0, 1] for the kernel.

    Returns:
        Up to ``n`` distinct indices into ``X_new``, in the order chosen; all of them (in order) when
        ``q <= n`` or fewer than 3 plans have been evaluated.
    """
    q = len(X_new)
    if q <= n or len(X_seen) < 3:
        return list(range(min(n, q)))
    scale = np.maximum(np.asarray(scale, dtype=float), 1.0)
    X, Xq = np.asarray(X_seen, float) / scale, np.asarray(X_new, float) / scale
    F = np.asarray(F_seen, float)
    Y = F if G_seen is None or not np.size(G_seen) else np.hstack([F, np.asarray(G_seen, float)])
    mean, sd = _predict(X, Y, Xq)
    k = F.shape[1]
    optimistic = mean[:, :k] - surrogate.optimism * sd[:, :k]
    feasible_seen = np.ones(len(F), bool) if Y.shape[1] == k else np.all(Y[:, k:] <= 0, axis=1)
    possible = np.ones(q, bool) if Y.shape[1] == k else np.all(mean[:, k:] - surrogate.optimism * sd[:, k:] <= 0,
                                                               axis=1)
    low = np.minimum(F.min(axis=0), optimistic.min(axis=0))
    span = np.maximum(F.max(axis=0) - low, 1e-9)
    ref = np.full(k, 1.1)
    front = (F[feasible_seen] - low) / span
    opt, believed = (optimistic - low) / span, (mean[:, :k] - low) / span
    chosen: list[int] = []
    for group in (np.flatnonzero(possible), np.flatnonzero(~possible)):
        left = list(group)
        while left and len(chosen) < n:
            base = _hypervolume(front, ref)
            gains = [_hypervolume(np.vstack([front, opt[i]]), ref) - base for i in left]
            best = left[int(np.argmax(gains))]  # ties: the earliest proposal (NSGA-II's order)
            chosen.append(best)
            left.remove(best)
            front = np.vstack([front, believed[best]])
    return chosen
