"""Uniform quantization: weight grids (symmetric or affine, per channel or per tensor) and activation fake-quant.

A grid is ``value = (code - zero_point) * scale`` with integer codes in ``[qmin, qmax]``:

* symmetric: ``qmax = 2^(b-1) - 1``, ``qmin = -qmax``, ``zero_point = 0`` (``2^b - 1`` levels, zero exact);
* affine: ``qmin = 0``, ``qmax = 2^b - 1``, integer ``zero_point`` (``2^b`` levels; the range always
  contains 0, so zero is exact and pruned weights stay zero).

A value's code is ``rint(value / scale) + zero_point`` (half to even) clipped to ``[qmin, qmax]``.
:func:`fit_grid` chooses each row's range in one of two ways:

* ``"minmax"`` spans the row: its largest |value| on the top code (symmetric), or
  ``[min(row, 0), max(row, 0)]`` (affine);
* ``"mse"`` clips: it searches ranges inside that span (a coarse ladder of clip ratios, finer ratios
  around the best, an affine zero point moved one code either way, then least-squares updates of
  the scale) and keeps, per row, the grid with the smallest (optionally weighted) squared error after
  quantize -> dequantize, as AIMET, NNCF and TensorRT do for weights. The full range is always a
  candidate and the final choice is checked on every value, so the error is never above
  ``"minmax"``'s. Per channel on ResNet-20 and VGG-19 the median over layers is 26-77% lower at 2-4
  bits (symmetric; 15-68% affine) and under 1% lower at 8 bits (``benchmarks/RESULTS.md``, section
  "quantization"). Candidates are ranked on at most 256 values per row (more when there are few
  rows): both 32-value tails of the sorted row and quantiles between, which keeps the search for all
  of VGG-19 to a fraction of a second. Above 8 bits ``"mse"`` returns the full range.

:func:`dequantize` is the only place codes become floats, so a model rebuilt from exported codes is
bit-identical to the compressed one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from moo_compress.compress.config import QuantizeConfig
from moo_compress.errors import ConfigError, DataFormatError

__all__ = [
    "QuantParams",
    "fit_grid",
    "quantize",
    "dequantize",
    "quantize_weights",
    "code_dtype",
    "ActivationQuant",
    "fake_quantize",
    "observe_activation_ranges",
]


@dataclass(frozen=True)
class QuantParams:
    """A quantization grid over the rows (output channels) of a weight, or over a whole tensor.

    Attributes:
        bits: Bit-width.
        symmetric: Signed grid with zero point 0, else affine.
        scale: float32, one per row (per channel) or a single entry (per tensor).
        zero_point: int32, same shape as ``scale``.
    """

    bits: int
    symmetric: bool
    scale: np.ndarray
    zero_point: np.ndarray

    @property
    def qmin(self) -> int:
        """Smallest code."""
        return -(2 ** (self.bits - 1) - 1) if self.symmetric else 0

    @property
    def qmax(self) -> int:
        """Largest code."""
        return 2 ** (self.bits - 1) - 1 if self.symmetric else 2**self.bits - 1

    @property
    def per_channel(self) -> bool:
        """Whether there is one scale per row."""
        return self.scale.size > 1


def code_dtype(bits: int, symmetric: bool) -> np.dtype:
    """The smallest integer dtype holding every code of a ``bits``-bit grid."""
    if bits <= 8:
        return np.dtype(np.int8 if symmetric else np.uint8)
    return np.dtype(np.int16 if symmetric else np.uint16)


def fit_grid(
    rows: np.ndarray,
    bits: int,
    *,
    symmetric: bool,
    method: str = "minmax",
    weights: np.ndarray | None = None,
) -> QuantParams:
    """A grid per row of the 2-D ``rows`` (pass one row for a per-tensor grid).

    Args:
        rows: Values to quantize, one grid per row.
        bits: Bit-width.
        symmetric: Signed grid around zero, else affine with an integer zero point.
        method: ``"minmax"`` spans each row: the largest |value| sits on the top code (symmetric),
            or the grid spans [min(row, 0), max(row, 0)] (affine). ``"mse"`` searches clipping
            ranges inside that span and keeps, per row, the grid whose quantize -> dequantize
            squared error is smallest; that error is never above ``"minmax"``'s. Above 8 bits
            ``"mse"`` returns the ``"minmax"`` grid (clipping gains nothing measurable there).
        weights: Non-negative weight of each value's squared error (shape of ``rows``; e.g. how
            many weights share each centroid of a codebook); only ``"mse"`` reads them.

    Returns:
        The grid. An all-zero row gets scale 1 (all its codes are the zero point).

    Raises:
        ConfigError: for an unknown ``method``.
        DataFormatError: if ``rows`` is not 2-D, or ``weights`` has another shape or a negative entry.
    """
    rows = np.asarray(rows, dtype=np.float32)
    if rows.ndim != 2:
        raise DataFormatError(f"fit_grid needs 2-D rows (one grid per row), got shape {rows.shape}")
    if method not in QuantizeConfig.RANGES:
        options = ", ".join(repr(m) for m in QuantizeConfig.RANGES)
        raise ConfigError(f"unknown grid range method {method!r}; use one of {options}")
    if weights is not None:
        weights = np.asarray(weights, dtype=np.float32)
        if weights.shape != rows.shape:
            raise DataFormatError(f"weights have shape {weights.shape}; they must match rows {rows.shape}")
        if not np.all(weights >= 0):  # also catches NaN
            raise DataFormatError("weights must be non-negative (they weight squared errors)")
    full = _full_range_grid(rows, bits, symmetric)
    if method == "minmax" or bits > _MAX_SEARCH_BITS or rows.size == 0:
        return full
    return _keep_better(rows, weights, full, _search(rows, weights, full))


def quantize(rows: np.ndarray, params: QuantParams) -> np.ndarray:
    """Integer codes (dtype :func:`code_dtype`) of the 2-D ``rows`` on ``params``' grid (round half to even)."""
    rows = np.asarray(rows, dtype=np.float32)
    return _float_codes(rows, params).astype(code_dtype(params.bits, params.symmetric))


def dequantize(codes: np.ndarray, params: QuantParams) -> np.ndarray:
    """float32 values ``(codes - zero_point) * scale`` of 2-D ``codes`` (rows match ``params.scale``)."""
    shifted = codes.astype(np.float32)
    if not params.symmetric:
        shifted -= params.zero_point[:, None].astype(np.float32)
    return shifted * params.scale[:, None]


def quantize_weights(
    weights: np.ndarray, bits: int, *, symmetric: bool, per_channel: bool, method: str = "minmax"
) -> tuple[QuantParams, np.ndarray]:
    """Fits a grid to ``weights`` (rows = first axis when per channel) and returns ``(params, codes)``.

    ``method`` chooses each grid's range as in :func:`fit_grid`; ``codes`` has the shape of ``weights``.
    """
    rows = weights.reshape(weights.shape[0] if per_channel else 1, -1)
    params = fit_grid(rows, bits, symmetric=symmetric, method=method)
    return params, quantize(rows, params).reshape(weights.shape)


def _float_codes(rows: np.ndarray, params: QuantParams) -> np.ndarray:
    """The codes of float32 ``rows`` as float32 (small integers, so exact): the one rounding rule."""
    codes = np.rint(rows / params.scale[:, None])
    if not params.symmetric:
        codes += params.zero_point[:, None].astype(np.float32)
    np.clip(codes, params.qmin, params.qmax, out=codes)
    return codes


def _reconstruct(rows: np.ndarray, params: QuantParams) -> np.ndarray:
    """``dequantize(quantize(rows, params), params)``, bit for bit, without the integer round trip."""
    values = _float_codes(rows, params)
    if not params.symmetric:
        values -= params.zero_point[:, None].astype(np.float32)
    values *= params.scale[:, None]
    return values


def _full_range_grid(rows: np.ndarray, bits: int, symmetric: bool) -> QuantParams:
    """The ``"minmax"`` grid: max-abs (symmetric) or [min(row, 0), max(row, 0)] (affine) per row."""
    if symmetric:
        qmax = 2 ** (bits - 1) - 1
        scale = (np.abs(rows).max(axis=1) / np.float32(qmax)).astype(np.float32)
        scale[scale == 0] = 1.0
        zero_point = np.zeros(scale.shape, dtype=np.int32)
    else:
        qmax = 2**bits - 1
        lo = np.minimum(rows.min(axis=1), 0).astype(np.float32)
        hi = np.maximum(rows.max(axis=1), 0).astype(np.float32)
        scale = ((hi - lo) / np.float32(qmax)).astype(np.float32)
        scale[scale == 0] = 1.0
        zero_point = np.clip(np.rint(-lo / scale), 0, qmax).astype(np.int32)
    return QuantParams(bits, symmetric, scale, zero_point)


# --- minimum squared error ranges ----------------------------------------------------------------------

#: Above this many bits ``"mse"`` keeps the full range: rounding errors are already tiny there and
#: the search would only cost time.
_MAX_SEARCH_BITS = 8
#: Factors around the best coarse clip ratio: one coarse step either side, in steps of 2^(1/12).
_FINE = (2.0 ** (np.array([-3, -2, -1, 1, 2, 3]) / 12)).astype(np.float32)
#: Least-squares updates of the scale (s = <w, q> / <q, q> with the codes q fixed) after the search.
_REFINE_STEPS = 2
#: The search reads at most this many values per row (more when there are few rows), of which
#: this many at either end ...
_SAMPLE_PER_ROW = 256
_SAMPLE_PER_TENSOR = 1 << 15
_SAMPLE_TAIL = 32
#: ... and works on blocks of at most this many float32 (rows x candidates x values), to bound memory.
_BLOCK = 1 << 22
#: Relative margin by which the searched grid must beat the full range: far above the float32
#: rounding of the differences, so the guarantee holds however one sums the error.
_MARGIN = 1e-5


def _ladder(bits: int) -> np.ndarray:
    """Coarse clip ratios (scale / full-range scale) for ``bits``, 1 first.

    Geometric steps of 2^(-1/3), because the error is about equally flat per relative step at every
    bit-width. The ladder reaches 0.04 at 2 bits, where heavy-tailed rows clip most, and 0.63 at 8
    bits; on ResNet-20 and VGG-19 every channel's best ratio lies at least 1.5x above the lowest rung
    (and the finer search reaches one coarse step below it).
    """
    rungs = 2 * (_MAX_SEARCH_BITS + 1 - bits)
    return (2.0 ** (-np.arange(rungs + 1) / 3)).astype(np.float32)


def _sample(rows: np.ndarray, weights: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
    """The values (and error weights) the search ranks candidates on.

    A short row is used whole. A long one is sorted and stratified: its ``_SAMPLE_TAIL`` smallest and
    largest values exactly (what clipping costs depends on them, and a sample would catch only a
    few), and evenly spaced quantiles of the rest, each weighted by the number of values it stands for.
    """
    n_rows, n = rows.shape
    per_row = max(_SAMPLE_PER_ROW, _SAMPLE_PER_TENSOR // n_rows)
    if n <= per_row:
        return rows, weights
    if weights is None:
        ordered, ordered_w = np.sort(rows, axis=1), None
    else:
        order = np.argsort(rows, axis=1)
        ordered, ordered_w = np.take_along_axis(rows, order, 1), np.take_along_axis(weights, order, 1)
    tail = _SAMPLE_TAIL
    bulk = n - 2 * tail
    step = -(-bulk // (per_row - 2 * tail))
    middle = slice(tail + step // 2, n - tail, step)  # the middle value of each run of `step`
    x = np.concatenate([ordered[:, :tail], ordered[:, middle], ordered[:, n - tail :]], axis=1)
    stands_for = np.float32(bulk / (x.shape[1] - 2 * tail))
    if ordered_w is None:
        w = np.ones(x.shape, dtype=np.float32)
        w[:, tail:-tail] = stands_for
    else:
        w = np.concatenate(
            [ordered_w[:, :tail], ordered_w[:, middle] * stands_for, ordered_w[:, n - tail :]], axis=1
        )
    return x, w


def _sample_errors(
    x: np.ndarray, w: np.ndarray | None, scale: np.ndarray, zero: np.ndarray | None, qmin: int, qmax: int
) -> np.ndarray:
    """(rows, candidates) float32 squared errors of ``x`` on the grids ``(scale, zero)`` (zero None: 0)."""
    n_rows, n = x.shape
    out = np.empty(scale.shape, dtype=np.float32)
    sqrt_w = None if w is None else np.sqrt(w)[:, None, :]
    chunk = max(1, _BLOCK // max(n_rows * n, 1))
    for c in range(0, scale.shape[1], chunk):
        s = scale[:, c : c + chunk, None]
        t = x[:, None, :] / s
        np.rint(t, out=t)
        if zero is None:
            np.clip(t, qmin, qmax, out=t)
        else:  # (clip with array bounds is several times slower than maximum + minimum)
            z = zero[:, c : c + chunk, None]
            np.maximum(t, qmin - z, out=t)
            np.minimum(t, qmax - z, out=t)
        t *= s
        t -= x[:, None, :]
        if sqrt_w is not None:
            t *= sqrt_w
        out[:, c : c + chunk] = np.einsum("rcn,rcn->rc", t, t)
    return out


def _search(rows: np.ndarray, weights: np.ndarray | None, full: QuantParams) -> QuantParams:
    """Per row, the grid with the smallest sampled error among ranges clipped inside the full one.

    Coarse ladder of clip ratios -> finer ratios around the best (affine grids: also with the zero
    point one code either way, which clips one side more than the other) -> least-squares scale
    updates. Every stage keeps a row's best grid so far, and the full range is the first candidate.
    """
    x, w = _sample(rows, weights)
    qmin, qmax, symmetric = full.qmin, full.qmax, full.symmetric
    s_full = full.scale
    n_rows = rows.shape[0]
    r = np.arange(n_rows)
    if not symmetric:
        # a moved zero point must keep the range inside [min(row, 0), max(row, 0)], give or take the
        # half step by which rounding the zero point already lets the full range out (the sample
        # holds each row's extremes)
        lo = np.minimum(x.min(axis=1), 0)[:, None]
        hi = np.maximum(x.max(axis=1), 0)[:, None]
        tol = np.float32(0.5 + 1e-3)

    def errors(scale: np.ndarray, zero: np.ndarray | None) -> np.ndarray:
        e = _sample_errors(x, w, scale, zero, qmin, qmax)
        bad = scale > s_full[:, None]
        if zero is not None:  # zero must stay a code, and the range inside the row's (see above)
            bad |= (zero < qmin) | (zero > qmax)
            bad |= (zero > np.floor(-lo / scale + tol)) | (zero < np.ceil(qmax - hi / scale - tol))
        e[bad] = np.inf
        return e

    scale = s_full[:, None] * _ladder(full.bits)[None, :]
    zero = None if symmetric else np.repeat(full.zero_point.astype(np.float32)[:, None], scale.shape[1], axis=1)
    e = errors(scale, zero)
    pick = e.argmin(axis=1)  # ties keep the first: the full range
    best_s, best_e = scale[r, pick], e[r, pick]
    best_z = None if zero is None else zero[r, pick]

    def consider(scale: np.ndarray, zero: np.ndarray | None) -> None:
        nonlocal best_s, best_z, best_e
        e = errors(scale, zero)
        pick = e.argmin(axis=1)
        found = e[r, pick]
        better = found < best_e
        best_s = np.where(better, scale[r, pick], best_s)
        best_e = np.where(better, found, best_e)
        if zero is not None:
            best_z = np.where(better, zero[r, pick], best_z)

    consider(best_s[:, None] * _FINE[None, :], None if best_z is None else np.repeat(best_z[:, None], _FINE.size, 1))
    if best_z is not None:  # affine: move the zero point one code either way (clips one side more)
        consider(np.repeat(best_s[:, None], 2, axis=1), best_z[:, None] + np.array([-1, 1], dtype=np.float32))
    for _ in range(_REFINE_STEPS):
        # with the codes q fixed, s = <w, q> / <q, q> minimises the error; rounding again with the
        # new s can only lower it further
        low, high = (qmin, qmax) if best_z is None else ((qmin - best_z)[:, None], (qmax - best_z)[:, None])
        q = np.clip(np.rint(x / best_s[:, None]), low, high)
        wq = q if w is None else q * w
        num, den = np.einsum("rn,rn->r", wq, x), np.einsum("rn,rn->r", wq, q)
        with np.errstate(divide="ignore", invalid="ignore"):
            fitted = (num / den).astype(np.float32)
        fitted = np.where(np.isfinite(fitted) & (fitted > 0), np.minimum(fitted, s_full), best_s)
        consider(fitted[:, None], None if best_z is None else best_z[:, None])
    zero_point = full.zero_point if best_z is None else np.rint(best_z).astype(np.int32)
    return QuantParams(full.bits, symmetric, best_s.astype(np.float32), zero_point)


def _row_errors(rows: np.ndarray, params: QuantParams, weights: np.ndarray | None) -> np.ndarray:
    """float64 squared error of each row after quantize -> dequantize on ``params``."""
    d = _reconstruct(rows, params)
    d -= rows
    if weights is not None:
        d *= np.sqrt(weights)
    return np.einsum("rn,rn->r", d, d, dtype=np.float64)


def _select_rows(params: QuantParams, index: np.ndarray) -> QuantParams:
    return QuantParams(params.bits, params.symmetric, params.scale[index], params.zero_point[index])


def _keep_better(rows: np.ndarray, weights: np.ndarray | None, full: QuantParams, searched: QuantParams) -> QuantParams:
    """Per row, ``searched`` where its exact error on every value is below ``full``'s, else ``full``.

    The search ranks grids on a sample, in float32; this is where the promise "never worse than the
    full range" is kept, with the error quantize -> dequantize really gives.
    """
    changed = np.flatnonzero((searched.scale != full.scale) | (searched.zero_point != full.zero_point))
    if changed.size < rows.shape[0]:  # rows left on the full range need no check (often half of them at 8 bits)
        rows = rows[changed]
        weights = None if weights is None else weights[changed]
    err_searched = _row_errors(rows, _select_rows(searched, changed), weights)
    err_full = _row_errors(rows, _select_rows(full, changed), weights)
    better = err_searched < err_full * (1 - _MARGIN)
    keep = changed[better]
    scale, zero_point = full.scale.copy(), full.zero_point.copy()
    scale[keep], zero_point[keep] = searched.scale[keep], searched.zero_point[keep]
    return QuantParams(full.bits, full.symmetric, scale, zero_point)


# --- activations -------------------------------------------------------------------------------------


def fake_quantize(x: torch.Tensor, scale: float, zero_point: int, qmax: int) -> torch.Tensor:
    """Rounds ``x`` onto the affine grid ``(q - zero_point) * scale``, ``q`` in ``[0, qmax]``.

    Rounds in float32 (a bf16 input under autocast has too few mantissa bits for 8-bit codes) and
    returns ``x``'s dtype.
    """
    q = torch.clamp(torch.round(x.float() / scale) + zero_point, 0, qmax)
    return ((q - zero_point) * scale).to(x.dtype)


@dataclass
class ActivationQuant:
    """A forward pre-hook that fake-quantizes a layer's input on a calibrated per-tensor affine grid.

    Attributes:
        bits: Bit-width.
        scale: Grid step.
        zero_point: Integer zero point in ``[0, 2^bits - 1]``.
    """

    bits: int
    scale: float
    zero_point: int

    @classmethod
    def from_range(cls, low: float, high: float, bits: int) -> ActivationQuant:
        """The grid covering ``[min(low, 0), max(high, 0)]``."""
        qmax = 2**bits - 1
        low, high = min(float(low), 0.0), max(float(high), 0.0)
        scale = (high - low) / qmax or 1.0
        return cls(bits, float(np.float32(scale)), int(np.clip(round(-low / scale), 0, qmax)))

    def __call__(self, module: nn.Module, args: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        return (fake_quantize(args[0], self.scale, self.zero_point, 2**self.bits - 1), *args[1:])

    def to_dict(self) -> dict[str, float | int]:
        """JSON-able form (stored in exported files)."""
        return {"bits": self.bits, "scale": self.scale, "zero_point": self.zero_point}


@torch.no_grad()
def observe_activation_ranges(
    model: nn.Module, modules: dict[str, nn.Module], batches: list[torch.Tensor]
) -> dict[str, tuple[float, float]]:
    """Runs ``batches`` through ``model`` (eval mode) and returns the min/max input of each of ``modules``."""
    ranges: dict[str, list[float]] = {}
    handles = []

    def observer(name: str):  # noqa: ANN202
        def hook(module: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
            x = args[0].detach()
            lo, hi = float(x.min()), float(x.max())
            old = ranges.get(name)
            ranges[name] = [lo, hi] if old is None else [min(old[0], lo), max(old[1], hi)]

        return hook

    for name, module in modules.items():
        handles.append(module.register_forward_pre_hook(observer(name)))
    was_training = model.training
    model.eval()
    try:
        for x in batches:
            model(x)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return {name: (lo, hi) for name, (lo, hi) in ranges.items()}
