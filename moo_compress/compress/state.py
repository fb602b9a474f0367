"""The compression state a compressed model carries: per layer its mask, codebook/indices, grid and codes.

The state is the source of truth: a layer's float weight is rebuilt from it by :meth:`LayerState.weight`
(in :func:`~moo_compress.compress.compress` and when loading an exported file alike), and size
accounting and export read it. Arrays live on the CPU whatever the model's device.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from moo_compress.compress.config import ClusterConfig, CompressionPlan, PruneConfig, QuantizeConfig
from moo_compress.compress.quantize import ActivationQuant, QuantParams, dequantize
from moo_compress.errors import ConfigError

__all__ = [
    "LayerState",
    "CompressionState",
    "compression_state",
    "is_compressed",
    "model_fingerprint",
    "STATE_ATTRIBUTE",
]

#: Attribute of the root module that holds the :class:`CompressionState`.
STATE_ATTRIBUTE = "moo_compression"


@dataclass
class LayerState:
    """How one layer's weight is stored.

    Exactly one representation is set:

    * clustered: ``codebook`` (float32 centroids, after quantization when quantized) and
      ``indices`` (int16, shaped like the weight, -1 where the weight is zero and takes no centroid);
      ``quant``/``codebook_codes`` hold the codebook's grid and codes when quantized;
    * quantized: ``quant`` (grid per output channel or per tensor) and ``codes`` (integers shaped
      like the weight);
    * pruned only: ``values`` (float32 weight with zeros).

    Attributes:
        name: Module name.
        shape: Weight shape.
        group: Plan group of the layer (None = top level).
        prune: Pruning config applied, or None.
        cluster: Clustering config applied, or None.
        quantize: Quantization config applied, or None.
        mask: Boolean keep-mask shaped like the weight: False where the weight is stored as an
            implicit zero; None when every weight is stored.
        codebook: Cluster values (clustered layers).
        indices: Cluster index per weight (clustered layers).
        codebook_codes: Integer codes of the codebook (clustered and quantized layers).
        quant: Quantization grid (quantized layers; of the codebook when clustered).
        codes: Integer code per weight (quantized, unclustered layers).
        values: Float weights (pruned-only layers).
    """

    name: str
    shape: tuple[int, ...]
    group: str | None
    prune: PruneConfig | None
    cluster: ClusterConfig | None
    quantize: QuantizeConfig | None
    mask: np.ndarray | None = None
    codebook: np.ndarray | None = None
    indices: np.ndarray | None = None
    codebook_codes: np.ndarray | None = None
    quant: QuantParams | None = None
    codes: np.ndarray | None = None
    values: np.ndarray | None = None
    _encoding: object = field(default=None, repr=False, compare=False)  # size.py caches its choice here

    @property
    def kind(self) -> str:
        """``codebook``, ``quant`` or ``float``."""
        if self.codebook is not None:
            return "codebook"
        return "quant" if self.codes is not None else "float"

    @property
    def numel(self) -> int:
        """Number of weights."""
        return int(np.prod(self.shape))

    @property
    def nonzero(self) -> int:
        """Number of stored (mask-kept) weights."""
        return self.numel if self.mask is None else int(np.count_nonzero(self.mask))

    @property
    def sparsity(self) -> float:
        """Fraction of weights stored as implicit zeros."""
        return 1.0 - self.nonzero / self.numel if self.numel else 0.0

    def weight(self, out: np.ndarray | None = None) -> np.ndarray:
        """The float32 weight this state stands for (the only decoder: compress and load both use it).

        Args:
            out: Optional C-contiguous float32 array of the weight's shape to write into.
        """
        if self.codebook is not None:
            table = np.append(self.codebook.astype(np.float32), np.float32(0.0))  # index -1 -> 0.0
            return np.take(table, self.indices, out=out)
        if self.codes is not None:
            rows = self.codes.reshape(self.quant.scale.size, -1)  # type: ignore[union-attr]
            w = dequantize(rows, self.quant).reshape(self.shape)  # type: ignore[arg-type]
        else:
            w = self.values  # type: ignore[assignment]
        if out is None:
            return w  # type: ignore[return-value]
        out[...] = w
        return out


@dataclass
class CompressionState:
    """Everything :func:`~moo_compress.compress.compress` did to a model.

    Attributes:
        plan: The plan applied.
        layers: Module name -> :class:`LayerState`, in module order.
        activations: Module name -> input fake-quantization grid (layers with ``activation_bits``).
    """

    plan: CompressionPlan
    layers: dict[str, LayerState]
    activations: dict[str, ActivationQuant] = field(default_factory=dict)


def is_compressed(model: nn.Module) -> bool:
    """Whether ``model`` carries a :class:`CompressionState`."""
    return isinstance(getattr(model, STATE_ATTRIBUTE, None), CompressionState)


def compression_state(model: nn.Module) -> CompressionState:
    """The :class:`CompressionState` of a model returned by ``compress`` or ``load_compressed``.

    Raises:
        ConfigError: if the model was not compressed by this package.
    """
    state = getattr(model, STATE_ATTRIBUTE, None)
    if not isinstance(state, CompressionState):
        raise ConfigError(
            f"{type(model).__name__} carries no compression state; pass a model returned by "
            "moo_compress.compress.compress() or load_compressed()"
        )
    return state


def model_fingerprint(model: nn.Module) -> str:
    """SHA-256 prefix (16 hex digits) of everything that decides what ``model`` computes.

    Every ``state_dict`` tensor (names, shapes, dtypes, values: weights, biases, batch-norm
    statistics) and, for a compressed model, its activation fake-quantization grids. Two plans that
    produce the same fingerprint produce the same model, so one evaluation serves both.
    """
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        t = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
        digest.update(t.view(-1).view(torch.uint8).numpy().data if t.numel() else b"")
    if is_compressed(model):
        activations = {n: a.to_dict() for n, a in compression_state(model).activations.items()}
        digest.update(json.dumps(activations, sort_keys=True).encode())
    return digest.hexdigest()[:16]
