"""Export: one packed file per compressed model (bit-packed codes, masks, codebooks), and loading it back.

File layout: the 8-byte magic ``MOOCPK01``, a little-endian uint32 header length, a UTF-8 JSON
header (plan, architecture, and per tensor its layout and the offset/length of each of its blobs),
then the blobs. Compressed weights use exactly the layouts of the storage model
(:mod:`moo_compress.compress.encoding`); every other floating-point tensor is raw little-endian.
Loading rebuilds each weight with the same decoder the compressor used, so the loaded model's
weights and outputs are bit-identical to the compressed model's.
"""

from __future__ import annotations

import copy
import gzip
import json
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from moo_compress.compress.api import install_activation_quant
from moo_compress.compress.config import CompressionPlan
from moo_compress.compress.encoding import ceil_log2, pack_uint, relative_codes, relative_positions, unpack_uint
from moo_compress.compress.quantize import ActivationQuant, QuantParams, code_dtype, dequantize
from moo_compress.compress.size import _code_bits, layer_encoding, size_report
from moo_compress.compress.state import STATE_ATTRIBUTE, CompressionState, LayerState, compression_state, is_compressed
from moo_compress.errors import CheckpointError, ConfigError
from moo_compress.fileio import atomic_open

__all__ = ["ExportResult", "pack_compressed", "unpack_compressed", "export_compressed", "load_compressed"]

MAGIC = b"MOOCPK01"
_FORMAT = "moo_compress-packed"
_VERSION = 1


@dataclass(frozen=True)
class ExportResult:
    """What :func:`export_compressed` wrote.

    Attributes:
        path: The file.
        bytes: Its size.
        gzip_bytes: Its size after gzip -9 (the seed study's measure).
        analytic_bytes: ``size_report(model).compressed_bits / 8``; the file exceeds it only by
            its header and per-blob byte padding.
    """

    path: Path
    bytes: int
    gzip_bytes: int
    analytic_bytes: float


class _Writer:
    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.offset = 0

    def add(self, data: bytes) -> list[int]:
        span = [self.offset, len(data)]
        self.parts.append(data)
        self.offset += len(data)
        return span


def _unsigned_codes(state: LayerState) -> np.ndarray:
    """A layer's code at every position, as non-negative integers (absent positions included)."""
    if state.kind == "codebook":
        codes = state.indices.reshape(-1).astype(np.int64)  # type: ignore[union-attr]
        codes[codes < 0] = state.codebook.size  # type: ignore[union-attr]  # the extra "zero" code
        return codes
    if state.kind == "quant":
        return state.codes.reshape(-1).astype(np.int64) - state.quant.qmin  # type: ignore[union-attr]
    return np.ascontiguousarray(state.values, dtype="<f4").reshape(-1).view("<u4")  # type: ignore[union-attr]


def _pack_layer(state: LayerState, writer: _Writer) -> dict[str, Any]:
    encoding = layer_encoding(state)
    dense_bits, code_bits = _code_bits(state)
    codes = _unsigned_codes(state)
    present = None if state.mask is None else state.mask.reshape(-1)
    blobs: dict[str, list[int]] = {}
    if encoding.layout == "dense":
        blobs["codes"] = writer.add(pack_uint(codes, dense_bits))
    elif encoding.layout == "rows":
        kept = present.reshape(state.shape[0], -1).any(axis=1)  # type: ignore[union-attr]
        blobs["positions"] = writer.add(np.packbits(kept, bitorder="little").tobytes())
        blobs["codes"] = writer.add(pack_uint(codes.reshape(state.shape[0], -1)[kept], dense_bits))
    else:
        if encoding.layout == "bitmask":
            blobs["positions"] = writer.add(np.packbits(present, bitorder="little").tobytes())
        else:
            blobs["positions"] = writer.add(
                pack_uint(
                    relative_codes(present, encoding.relative_bits),  # type: ignore[arg-type]
                    encoding.relative_bits,
                )
            )
        blobs["codes"] = writer.add(pack_uint(codes[present], code_bits))
    quant = state.quant
    if state.kind == "codebook":
        if quant is None:
            blobs["codebook"] = writer.add(state.codebook.astype("<f4").tobytes())  # type: ignore[union-attr]
        else:
            unsigned = state.codebook_codes.astype(np.int64) - quant.qmin  # type: ignore[union-attr]
            blobs["codebook_codes"] = writer.add(pack_uint(unsigned, quant.bits))
    if quant is not None:
        blobs["scale"] = writer.add(quant.scale.astype("<f4").tobytes())
        if not quant.symmetric:
            blobs["zero_point"] = writer.add(quant.zero_point.astype("<i4").tobytes())
    return {
        "kind": state.kind,
        "layout": encoding.layout,
        "relative_bits": encoding.relative_bits,
        "nonzero": state.nonzero,
        "has_mask": state.mask is not None,
        "codebook_size": None if state.codebook is None else int(state.codebook.size),
        "quant": None
        if quant is None
        else {"bits": quant.bits, "symmetric": quant.symmetric, "channels": int(quant.scale.size)},
        "group": state.group,
        "blobs": blobs,
    }


def _num_classes(model: nn.Module) -> int | None:
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    return linears[-1].out_features if linears else None


def pack_compressed(model: nn.Module, *, arch: str | None = None, num_classes: int | None = None) -> bytes:
    """The packed file's bytes (see the module docstring); an uncompressed model packs all tensors raw.

    Args:
        model: A model returned by ``compress`` (or any model).
        arch: Registered architecture name, stored so :func:`load_compressed` can rebuild the model
            without a skeleton.
        num_classes: Classifier outputs (default: the last Linear layer's).
    """
    state = compression_state(model) if is_compressed(model) else CompressionState(CompressionPlan(), {})
    weights = {f"{name}.weight": layer for name, layer in state.layers.items()}
    writer = _Writer()
    tensors = []
    for key, tensor in model.state_dict().items():
        if not tensor.is_floating_point():
            continue
        entry: dict[str, Any] = {"key": key, "shape": list(tensor.shape)}
        layer = weights.get(key)
        if layer is not None:
            entry.update(layer=layer.name, **_pack_layer(layer, writer))
        else:
            data = tensor.detach().cpu().contiguous().numpy().astype("<f4", copy=False).tobytes()
            entry.update(kind="raw", dtype="float32", blobs={"data": writer.add(data)})
        tensors.append(entry)
    header = {
        "format": _FORMAT,
        "version": _VERSION,
        "arch": arch,
        "num_classes": num_classes if num_classes is not None else _num_classes(model),
        "plan": state.plan.to_dict(),
        "tensors": tensors,
        "activations": {name: a.to_dict() for name, a in state.activations.items()},
    }
    head = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    return b"".join([MAGIC, struct.pack("<I", len(head)), head, *writer.parts])


def _blob(data: memoryview, span: list[int]) -> memoryview:
    return data[span[0] : span[0] + span[1]]


def _unpack_layer(entry: dict[str, Any], plan: CompressionPlan, data: memoryview) -> LayerState:
    shape = tuple(entry["shape"])
    rows, n = shape[0], int(np.prod(shape))
    blobs = entry["blobs"]
    state = LayerState(entry["layer"], shape, entry["group"], *plan.configs_for(entry["group"]))
    kind, layout, k = entry["kind"], entry["layout"], entry["codebook_size"]
    quant = None
    if entry["quant"] is not None:
        q = entry["quant"]
        scale = np.frombuffer(_blob(data, blobs["scale"]), dtype="<f4").astype(np.float32)
        zero = (
            np.zeros(q["channels"], np.int32)
            if q["symmetric"]
            else np.frombuffer(_blob(data, blobs["zero_point"]), dtype="<i4").astype(np.int32)
        )
        quant = QuantParams(q["bits"], q["symmetric"], scale, zero)
    # bits per code, and the code of an implicit zero (per row for per-channel affine grids)
    if kind == "codebook":
        dense_bits, code_bits, absent = ceil_log2(k + entry["has_mask"]), ceil_log2(k), np.int64(k)
    elif kind == "quant":
        dense_bits = code_bits = quant.bits  # type: ignore[union-attr]
        absent = (quant.zero_point.astype(np.int64) - quant.qmin)[:, None]  # type: ignore[union-attr]
    else:
        dense_bits, code_bits, absent = 32, 32, np.int64(0)

    if layout == "dense":
        codes = unpack_uint(_blob(data, blobs["codes"]), dense_bits, n).astype(np.int64)
    else:
        grid = np.empty((rows, n // rows), dtype=np.int64)
        grid[:] = absent
        if layout == "rows":
            kept = np.unpackbits(
                np.frombuffer(_blob(data, blobs["positions"]), np.uint8), bitorder="little", count=rows
            ).astype(bool)
            grid[kept] = unpack_uint(_blob(data, blobs["codes"]), dense_bits, int(kept.sum()) * (n // rows)).reshape(
                -1, n // rows
            )
            codes = grid.reshape(-1)
        else:
            codes = grid.reshape(-1)
            if layout == "bitmask":
                present = np.unpackbits(
                    np.frombuffer(_blob(data, blobs["positions"]), np.uint8), bitorder="little", count=n
                ).astype(bool)
                positions = np.flatnonzero(present)
            else:
                r = entry["relative_bits"]
                stream = unpack_uint(_blob(data, blobs["positions"]), r, len(_blob(data, blobs["positions"])) * 8 // r)
                positions = relative_positions(stream, r)[: entry["nonzero"]]
            codes[positions] = unpack_uint(_blob(data, blobs["codes"]), code_bits, positions.size)

    if kind == "codebook":
        indices = codes.astype(np.int16)
        indices[codes == k] = -1
        state.indices = indices.reshape(shape)
        state.mask = state.indices >= 0 if entry["has_mask"] else None
        if quant is None:
            state.codebook = np.frombuffer(_blob(data, blobs["codebook"]), dtype="<f4").astype(np.float32)
        else:
            unsigned = unpack_uint(_blob(data, blobs["codebook_codes"]), quant.bits, k).astype(np.int64)
            state.quant = quant
            state.codebook_codes = (unsigned + quant.qmin).astype(code_dtype(quant.bits, quant.symmetric))
            state.codebook = dequantize(state.codebook_codes[None, :], quant)[0]
    elif kind == "quant":
        state.quant = quant
        state.codes = (codes + quant.qmin).astype(code_dtype(quant.bits, quant.symmetric)).reshape(shape)  # type: ignore[union-attr]
        nonzero = state.codes != quant.zero_point.reshape((-1,) + (1,) * (len(shape) - 1))  # type: ignore[union-attr]
        state.mask = nonzero if entry["has_mask"] else None
    else:
        state.values = codes.astype("<u4").view("<f4").astype(np.float32).reshape(shape)
        state.mask = state.values != 0 if entry["has_mask"] else None
    return state


def unpack_compressed(data: bytes, model: nn.Module | None = None) -> nn.Module:
    """Rebuilds a compressed model from :func:`pack_compressed` bytes (in eval mode).

    Args:
        data: The packed bytes.
        model: A skeleton of the architecture (copied, never modified); built with
            ``create_model(arch, num_classes)`` from the header when None.

    Raises:
        CheckpointError: if the bytes are not a packed model or do not fit the skeleton.
        ConfigError: if no skeleton is given and the file names no architecture.
    """
    view = memoryview(data)
    if bytes(view[:8]) != MAGIC:
        raise CheckpointError("not a moo_compress packed model (bad magic); export one with export_compressed()")
    (length,) = struct.unpack("<I", view[8:12])
    header = json.loads(bytes(view[12 : 12 + length]))
    if header.get("format") != _FORMAT or header.get("version") != _VERSION:
        raise CheckpointError(
            f"unsupported packed format {header.get('format')} v{header.get('version')}; "
            f"this version reads {_FORMAT} v{_VERSION}"
        )
    blobs = view[12 + length :]
    if model is None:
        if not header.get("arch"):
            raise ConfigError(
                "the packed file names no architecture; pass model=create_model(arch, num_classes=...) "
                "or export with arch=..."
            )
        from moo_compress.models import create_model

        model = create_model(header["arch"], num_classes=header["num_classes"] or 10)
    else:
        if is_compressed(model):
            raise ConfigError("pass an uncompressed skeleton model to load into")
        model = copy.deepcopy(model)
    plan = CompressionPlan.from_dict(header["plan"])
    expected = {k: v for k, v in model.state_dict().items() if v.is_floating_point()}
    keys = [t["key"] for t in header["tensors"]]
    missing, unexpected = sorted(set(expected) - set(keys)), sorted(set(keys) - set(expected))
    bad_shapes = [
        t["key"] for t in header["tensors"] if t["key"] in expected and list(expected[t["key"]].shape) != t["shape"]
    ]
    if missing or unexpected or bad_shapes:
        raise CheckpointError(
            f"packed model does not fit {type(model).__name__}: missing {missing[:5]}, "
            f"unexpected {unexpected[:5]}, shape mismatches {bad_shapes[:5]}; pass the matching architecture"
        )
    layers: dict[str, LayerState] = {}
    tensors: dict[str, torch.Tensor] = {}
    for entry in header["tensors"]:
        if entry["kind"] == "raw":
            array = np.frombuffer(_blob(blobs, entry["blobs"]["data"]), dtype="<f4").reshape(entry["shape"])
        else:
            layer = _unpack_layer(entry, plan, blobs)
            layers[layer.name] = layer
            array = layer.weight()
        tensors[entry["key"]] = torch.from_numpy(np.array(array, dtype=np.float32))
    with torch.no_grad():
        for key, value in tensors.items():
            expected[key].copy_(value)
    activations = {name: ActivationQuant(**a) for name, a in header["activations"].items()}
    if layers or activations:
        setattr(model, STATE_ATTRIBUTE, CompressionState(plan, layers, activations))
        install_activation_quant(model, activations)
    return model.eval()


def export_compressed(
    model: nn.Module, path: str | os.PathLike[str], *, arch: str | None = None, num_classes: int | None = None
) -> ExportResult:
    """Writes the packed model to ``path`` (atomically) and reports its measured size.

    Args:
        model: A model returned by ``compress``.
        path: Destination file.
        arch: Registered architecture name (lets :func:`load_compressed` rebuild it without a skeleton).
        num_classes: Classifier outputs (default: inferred).
    """
    data = pack_compressed(model, arch=arch, num_classes=num_classes)
    path = Path(path)
    with atomic_open(path, "wb") as handle:
        handle.write(data)
    return ExportResult(
        path, len(data), len(gzip.compress(data, compresslevel=9, mtime=0)), size_report(model).compressed_bytes
    )


def load_compressed(path: str | os.PathLike[str], model: nn.Module | None = None) -> nn.Module:
    """Loads a file written by :func:`export_compressed` (see :func:`unpack_compressed`)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"packed model {path} does not exist; write one with export_compressed()")
    return unpack_compressed(path.read_bytes(), model)
