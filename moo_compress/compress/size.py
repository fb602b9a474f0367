"""Size accounting: compressed bits per tensor under the documented storage model, and the compression ratio.

Storage model (bits):

* a compressed weight is costed by :func:`~moo_compress.compress.encoding.choose_encoding`, the
  smallest of a dense, bitmask, per-filter or relative-index layout, with codes of

  - clustered layers: ``ceil(log2 k)``-bit centroid indices, plus the codebook: ``k`` values at the
    quantized width (32 bits unquantized), plus its grid (32-bit scale, 32-bit zero point when affine);
  - quantized layers: ``b``-bit codes, plus a 32-bit scale per channel (per tensor) and a 32-bit zero
    point each when affine;
  - pruned-only layers: 32-bit floats;

* every other floating-point tensor of the ``state_dict`` (biases, batch norm, uncompressed layers)
  at 32 bits per element; integer buffers (``num_batches_tracked``) are not model data and are
  counted on neither side.

``compression_ratio = dense fp32 bits / compressed bits``, where dense fp32 bits is 32 times the
number of floating-point elements of the ``state_dict``. The exporter writes exactly these layouts,
so the packed file exceeds ``compressed_bits / 8`` only by its header and byte padding.
"""

from __future__ import annotations

import gzip
import io
from dataclasses import dataclass

import torch
from torch import nn

from moo_compress.compress.encoding import Encoding, ceil_log2, choose_encoding
from moo_compress.compress.state import LayerState, compression_state, is_compressed

__all__ = [
    "TensorSize",
    "SizeReport",
    "layer_encoding",
    "side_bits",
    "size_report",
    "compression_ratio",
    "state_dict_bytes",
    "gzip_bytes",
]

FLOAT_BITS = 32


def _code_bits(state: LayerState) -> tuple[int, int]:
    """(dense_bits, code_bits) of a layer's codes."""
    if state.kind == "codebook":
        k = state.codebook.size  # type: ignore[union-attr]
        return ceil_log2(k + (state.mask is not None)), ceil_log2(k)
    if state.kind == "quant":
        return state.quant.bits, state.quant.bits  # type: ignore[union-attr]
    return FLOAT_BITS, FLOAT_BITS


def layer_encoding(state: LayerState) -> Encoding:
    """The layout of a layer's weight (cached on the state)."""
    if state._encoding is None:
        dense_bits, code_bits = _code_bits(state)
        state._encoding = choose_encoding(state.mask, state.shape, dense_bits=dense_bits, code_bits=code_bits)
    return state._encoding  # type: ignore[return-value]


def side_bits(state: LayerState) -> int:
    """Bits of a layer's codebook and grid parameters."""
    grid = 0
    if state.quant is not None:
        grid = state.quant.scale.size * FLOAT_BITS * (1 if state.quant.symmetric else 2)
    if state.kind == "codebook":
        width = state.quant.bits if state.quant is not None else FLOAT_BITS
        return state.codebook.size * width + grid  # type: ignore[union-attr]
    return grid


@dataclass(frozen=True)
class TensorSize:
    """The size of one ``state_dict`` tensor.

    Attributes:
        name: ``state_dict`` key.
        shape: Tensor shape.
        numel: Elements.
        nonzero: Stored (non-implicit-zero) elements.
        kind: ``codebook``, ``quant``, ``float`` (compressed weights) or ``raw`` (stored as is).
        layout: ``dense``, ``bitmask``, ``rows``, ``relative`` (``dense`` for raw tensors).
        bits: Compressed bits, side information included.
        dense_bits: Bits at fp32.
    """

    name: str
    shape: tuple[int, ...]
    numel: int
    nonzero: int
    kind: str
    layout: str
    bits: int
    dense_bits: int

    @property
    def ratio(self) -> float:
        """dense_bits / bits."""
        return self.dense_bits / self.bits if self.bits else float("inf")


@dataclass(frozen=True)
class SizeReport:
    """Per-tensor sizes of a model under the storage model, and their totals."""

    tensors: tuple[TensorSize, ...]

    @property
    def dense_bits(self) -> int:
        """Bits of every floating-point tensor at fp32."""
        return sum(t.dense_bits for t in self.tensors)

    @property
    def compressed_bits(self) -> int:
        """Bits under the storage model."""
        return sum(t.bits for t in self.tensors)

    @property
    def compression_ratio(self) -> float:
        """dense fp32 bits / compressed bits."""
        return self.dense_bits / self.compressed_bits

    @property
    def compressed_bytes(self) -> float:
        """compressed_bits / 8."""
        return self.compressed_bits / 8

    def layers(self) -> list[TensorSize]:
        """The compressed weights only."""
        return [t for t in self.tensors if t.kind != "raw"]

    def to_records(self) -> list[dict[str, object]]:
        """One dict per tensor (for ``pandas.DataFrame``)."""
        return [{**t.__dict__, "ratio": t.ratio} for t in self.tensors]

    def to_markdown(self, *, compressed_only: bool = True) -> str:
        """A Markdown table of the (compressed) tensors and a total line."""
        rows = ["| tensor | shape | sparsity | kind | layout | bits | ratio |", "|---|---|---|---|---|---|---|"]
        for t in self.layers() if compressed_only else self.tensors:
            sparsity = 1 - t.nonzero / t.numel if t.numel else 0.0
            rows.append(
                f"| {t.name} | {'x'.join(map(str, t.shape))} | {100 * sparsity:.1f}% | {t.kind} | {t.layout} "
                f"| {t.bits:,} | {t.ratio:.2f}x |"
            )
        rows.append(f"| **total** | | | | | {self.compressed_bits:,} | {self.compression_ratio:.2f}x |")
        return "\n".join(rows)


def size_report(model: nn.Module) -> SizeReport:
    """Sizes of every floating-point ``state_dict`` tensor of ``model`` (compressed or not)."""
    layers = compression_state(model).layers if is_compressed(model) else {}
    weights = {f"{name}.weight": state for name, state in layers.items()}
    out = []
    for key, tensor in model.state_dict().items():
        if not tensor.is_floating_point():
            continue
        shape, numel = tuple(tensor.shape), tensor.numel()
        state = weights.get(key)
        if state is None:
            out.append(TensorSize(key, shape, numel, numel, "raw", "dense", numel * FLOAT_BITS, numel * FLOAT_BITS))
            continue
        encoding = layer_encoding(state)
        out.append(
            TensorSize(
                key,
                shape,
                numel,
                state.nonzero,
                state.kind,
                encoding.layout,
                encoding.bits + side_bits(state),
                numel * FLOAT_BITS,
            )
        )
    return SizeReport(tuple(out))


def compression_ratio(model: nn.Module) -> float:
    """dense fp32 bits / compressed bits of ``model`` (1.0 for an uncompressed model)."""
    return size_report(model).compression_ratio


def state_dict_bytes(model: nn.Module) -> bytes:
    """The bytes ``torch.save(model.state_dict())`` writes (the fp32 checkpoint the ratio is measured against)."""
    buffer = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, buffer)
    return buffer.getvalue()


def gzip_bytes(data: bytes, *, level: int = 9) -> int:
    """Length of ``data`` after gzip (the measure the seed study used)."""
    return len(gzip.compress(data, compresslevel=level, mtime=0))
