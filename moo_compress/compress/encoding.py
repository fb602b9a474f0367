"""The storage model: how a compressed weight is laid out in bits, shared by size accounting and export.

A compressed weight is a sequence of *codes* (cluster indices, quantization codes or raw float32
bits) at some positions; the other positions are implicit zeros. Four layouts are costed and the
smallest is used (ties go to the first):

``dense``
    every position's code: ``n * dense_bits``. For a clustered layer with implicit zeros the zero
    gets an extra code, so ``dense_bits = ceil(log2(k + 1))``.
``bitmask``
    one bit per position plus the stored codes: ``n + nnz * code_bits``.
``rows``
    one bit per output filter plus the dense codes of the filters that are not entirely zero:
    ``rows + kept_rows * row_length * dense_bits`` (what structured pruning produces).
``relative``
    each stored code preceded by an ``r``-bit count of the zeros skipped since the previous one;
    the all-ones count is an escape meaning "skip ``2^r - 1`` zeros, no code follows":
    ``r * (nnz + escapes) + nnz * code_bits``, with the best ``r`` in 1..16.

Side information (codebooks, scales, zero points) is costed separately by the caller.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = [
    "Encoding",
    "choose_encoding",
    "ceil_log2",
    "pack_uint",
    "unpack_uint",
    "relative_codes",
    "relative_positions",
]

_MAX_RELATIVE_BITS = 16
_CHUNK = 1 << 20


def ceil_log2(k: int) -> int:
    """Bits needed to tell ``k`` values apart (0 for k <= 1)."""
    return 0 if k <= 1 else math.ceil(math.log2(k))


@dataclass(frozen=True)
class Encoding:
    """The chosen layout of one weight.

    Attributes:
        layout: ``dense``, ``bitmask``, ``rows`` or ``relative``.
        bits: Bits of positions and codes (side information excluded).
        relative_bits: ``r`` of the relative layout (0 otherwise).
    """

    layout: str
    bits: int
    relative_bits: int = 0


def _gaps(present: np.ndarray) -> np.ndarray:
    positions = np.flatnonzero(present)
    return np.diff(positions, prepend=-1) - 1  # zeros skipped before each stored code


def choose_encoding(present: np.ndarray | None, shape: tuple[int, ...], *, dense_bits: int, code_bits: int) -> Encoding:
    """The smallest layout (see the module docstring) for a weight of ``shape``.

    Args:
        present: Boolean mask of stored positions (None = all stored).
        shape: Weight shape (first axis = output filters).
        dense_bits: Bits per position in the dense layouts.
        code_bits: Bits per stored code in the sparse layouts.
    """
    n = int(np.prod(shape))
    best = Encoding("dense", n * dense_bits)
    if present is None:
        return best
    present = present.reshape(-1)
    nnz = int(np.count_nonzero(present))
    bitmask = n + nnz * code_bits
    if bitmask < best.bits:
        best = Encoding("bitmask", bitmask)
    rows = shape[0]
    kept_rows = int(np.count_nonzero(present.reshape(rows, -1).any(axis=1)))
    if kept_rows < rows:
        by_rows = rows + kept_rows * (n // rows) * dense_bits
        if by_rows < best.bits:
            best = Encoding("rows", by_rows)
    gaps = None
    for r in range(1, _MAX_RELATIVE_BITS + 1):
        if r * nnz + nnz * code_bits >= best.bits:
            break  # the cost only grows with r from here on
        if gaps is None:
            gaps = _gaps(present)
        escapes = int(np.sum(gaps // (2**r - 1))) if r > 1 else int(gaps.sum())
        cost = r * (nnz + escapes) + nnz * code_bits
        if cost < best.bits:
            best = Encoding("relative", cost, r)
    return best


def relative_codes(present: np.ndarray, r: int) -> np.ndarray:
    """The ``r``-bit skip counts (escapes included) that encode the positions of ``present``."""
    escape = 2**r - 1
    gaps = _gaps(present.reshape(-1))
    n_escapes = gaps // escape
    out = np.full(int(gaps.size + n_escapes.sum()), escape, dtype=np.uint32)
    # each stored code sits after its escapes; its own count is the remainder
    ends = np.cumsum(n_escapes + 1) - 1
    out[ends] = gaps - n_escapes * escape
    return out


def relative_positions(codes: np.ndarray, r: int) -> np.ndarray:
    """Inverse of :func:`relative_codes`: the flat positions of the stored codes."""
    escape = 2**r - 1
    codes = codes.astype(np.int64)
    final = codes != escape
    step = np.where(final, codes + 1, escape)  # a stored code advances past its skipped zeros and itself
    return (np.cumsum(step) - 1)[final]


def pack_uint(values: np.ndarray, bits: int) -> bytes:
    """Packs non-negative integers below ``2^bits`` into ``ceil(len * bits / 8)`` bytes (little-endian bit order)."""
    values = np.ascontiguousarray(values).reshape(-1)
    if bits == 0 or values.size == 0:
        return b""
    if bits in (8, 16, 32):
        return values.astype(f"<u{bits // 8}").tobytes()
    out = []
    shifts = np.arange(bits, dtype=np.uint32)
    pending = np.zeros(0, dtype=np.uint8)
    for start in range(0, values.size, _CHUNK):
        chunk = values[start : start + _CHUNK].astype(np.uint32)
        bit_matrix = ((chunk[:, None] >> shifts) & 1).astype(np.uint8).reshape(-1)
        stream = np.concatenate([pending, bit_matrix])
        whole = stream.size - stream.size % 8
        out.append(np.packbits(stream[:whole], bitorder="little").tobytes())
        pending = stream[whole:]
    if pending.size:
        out.append(np.packbits(pending, bitorder="little").tobytes())
    return b"".join(out)


def unpack_uint(data: bytes | memoryview, bits: int, count: int) -> np.ndarray:
    """Inverse of :func:`pack_uint`: ``count`` integers (uint32) of ``bits`` bits each."""
    if bits == 0 or count == 0:
        return np.zeros(count, dtype=np.uint32)
    if bits in (8, 16, 32):
        return np.frombuffer(data, dtype=f"<u{bits // 8}", count=count).astype(np.uint32)
    raw = np.frombuffer(data, dtype=np.uint8)
    out = np.empty(count, dtype=np.uint32)
    weights = np.uint32(1) << np.arange(bits, dtype=np.uint32)
    per_chunk = _CHUNK - _CHUNK % 8  # whole bytes per chunk: chunk * bits is a multiple of 8
    for start in range(0, count, per_chunk):
        stop = min(start + per_chunk, count)
        first_bit, last_bit = start * bits, stop * bits
        byte0 = first_bit // 8
        stream = np.unpackbits(raw[byte0 : (last_bit + 7) // 8], bitorder="little")[first_bit - byte0 * 8 :]
        matrix = stream[: (stop - start) * bits].reshape(-1, bits).astype(np.uint32)
        out[start:stop] = matrix @ weights
    return out
