"""Uniform quantization: weight grids (symmetric or affine, per channel or per tensor) and activation fake-quant.

A grid is ``value = (code - zero_point) * scale`` with integer codes in ``[qmin, qmax]``:

* symmetric: ``qmax = 2^(b-1) - 1``, ``qmin = -qmax``, ``zero_point = 0`` (``2^b - 1`` levels, zero exact);
* affine: ``qmin = 0``, ``qmax = 2^b - 1``, integer ``zero_point`` (``2^b`` levels; the range always
  contains 0, so zero is exact and pruned weights stay zero).

:func:`dequantize` is the only place codes become floats, so a model rebuilt from exported codes is
bit-identical to the compressed one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

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


def fit_grid(rows: np.ndarray, bits: int, *, symmetric: bool) -> QuantParams:
    """The grid that covers each row of ``rows`` (2-D: one grid per row; pass one row for per-tensor).

    Symmetric grids put the largest |value| on the top code; affine grids span [min(row, 0), max(row, 0)].
    An all-zero row gets scale 1 (all its codes are the zero point).
    """
    rows = np.asarray(rows, dtype=np.float32)
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


def quantize(rows: np.ndarray, params: QuantParams) -> np.ndarray:
    """Integer codes (dtype :func:`code_dtype`) of the 2-D ``rows`` on ``params``' grid (round half to even)."""
    rows = np.asarray(rows, dtype=np.float32)
    scale = params.scale[:, None]
    codes = np.rint(rows / scale)
    if not params.symmetric:
        codes += params.zero_point[:, None].astype(np.float32)
    np.clip(codes, params.qmin, params.qmax, out=codes)
    return codes.astype(code_dtype(params.bits, params.symmetric))


def dequantize(codes: np.ndarray, params: QuantParams) -> np.ndarray:
    """float32 values ``(codes - zero_point) * scale`` of 2-D ``codes`` (rows match ``params.scale``)."""
    shifted = codes.astype(np.float32)
    if not params.symmetric:
        shifted -= params.zero_point[:, None].astype(np.float32)
    return shifted * params.scale[:, None]


def quantize_weights(
    weights: np.ndarray, bits: int, *, symmetric: bool, per_channel: bool
) -> tuple[QuantParams, np.ndarray]:
    """Fits a grid to ``weights`` (rows = first axis when per channel) and returns ``(params, codes)``.

    ``codes`` has the shape of ``weights``.
    """
    rows = weights.reshape(weights.shape[0] if per_channel else 1, -1)
    params = fit_grid(rows, bits, symmetric=symmetric)
    return params, quantize(rows, params).reshape(weights.shape)


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
