"""``compress(model, plan)``: the one entry that applies a :class:`CompressionPlan`.

Order of work: copy the model; resolve the layers; prune (per group: one global ranking, or per
layer); per layer cluster the surviving weights, then quantize (the centroids when clustered, else
the weights); write the rebuilt weights into the copy; remove the channels of structured-pruned
filters (zero their biases and the batch-norm affine parameters that follow them); then, when asked,
fine-tune with the compression kept, re-estimate batch-norm statistics and calibrate activation
fake-quantization.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import logging
import zlib
from collections import defaultdict
from collections.abc import Iterator

import numpy as np
import torch
from torch import nn

from moo_compress.compress.calibration import CalibrationData
from moo_compress.compress.channels import channel_graph
from moo_compress.compress.cluster import cluster_weights
from moo_compress.compress.config import CompressionPlan, QuantizeConfig
from moo_compress.compress.prune import prune_masks
from moo_compress.compress.quantize import (
    ActivationQuant,
    QuantParams,
    dequantize,
    fit_grid,
    observe_activation_ranges,
    quantize,
    quantize_weights,
)
from moo_compress.compress.recovery import finetune, recalibrate_batchnorm
from moo_compress.compress.state import STATE_ATTRIBUTE, CompressionState, LayerState, is_compressed
from moo_compress.compress.targets import LayerFilter, Target, is_compressible, resolve_targets
from moo_compress.errors import ConfigError

__all__ = ["compress", "ACTIVATION_CALIBRATION_IMAGES", "install_activation_quant"]

_log = logging.getLogger(__name__)

#: Activation observers see at most this many calibration images (in order).
ACTIVATION_CALIBRATION_IMAGES = 512


def _calibration_uses(plan: CompressionPlan) -> list[str]:
    """What the plan reads calibration images for (non-empty exactly when ``plan.needs_calibration``)."""
    uses = []
    if plan.recovery.bn_images:
        uses.append(f"batch-norm re-estimation (recovery.bn_images={plan.recovery.bn_images})")
    if plan.recovery.finetune_steps:
        distilled = ", distilled from the original" if plan.recovery.finetune_distill > 0 else ""
        uses.append(f"fine-tuning (recovery.finetune_steps={plan.recovery.finetune_steps}{distilled})")
    if plan.quantizes_activations:
        uses.append("activation quantization (activation_bits)")
    return uses


def _check_inputs(model: nn.Module, plan: CompressionPlan, calibration: CalibrationData | None) -> None:
    if not isinstance(model, nn.Module):
        raise ConfigError(f"compress() needs a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(plan, CompressionPlan):
        raise ConfigError(
            f"compress() needs a CompressionPlan, got {type(plan).__name__}; build one with "
            "CompressionPlan(...) or CompressionPlan.from_dict(...)"
        )
    if is_compressed(model):
        raise ConfigError("this model is already compressed; compress the original (uncompressed) model instead")
    if calibration is not None and not isinstance(calibration, CalibrationData):
        raise ConfigError(
            f"calibration must be a CalibrationData, got {type(calibration).__name__}; "
            "build one with CalibrationData.from_dataset(train_split, mean=..., std=..., n=...)"
        )
    if plan.needs_calibration and calibration is None:
        raise ConfigError(
            f"the plan asks for {', '.join(_calibration_uses(plan))}, which needs calibration images: pass "
            "calibration=CalibrationData.from_dataset(train_split, mean=..., std=..., n=...)"
        )
    recovery = plan.recovery
    for name, wanted in (("bn_images", recovery.bn_images),
                         ("finetune_images", recovery.finetune_images if recovery.finetune_steps else None)):
        if calibration is not None and wanted is not None and wanted > len(calibration):
            raise ConfigError(
                f"recovery.{name}={wanted} but the calibration data holds {len(calibration)} images; "
                f"pass more images or lower {name}"
            )


def _layer_rng(seed: int, name: str) -> np.random.Generator:
    # depends on the seed and the layer's name only, not on which other layers are compressed
    return np.random.default_rng([seed, zlib.crc32(name.encode())])


def _zero_mask(nonzero: np.ndarray) -> np.ndarray | None:
    return None if nonzero.all() else nonzero


def _layer_state(target: Target, weight: np.ndarray, keep: np.ndarray | None, seed: int) -> LayerState:
    state = LayerState(target.name, tuple(weight.shape), target.group, target.prune, target.cluster, target.quantize)
    w = weight if keep is None else weight * keep
    q = target.quantize
    if target.cluster is not None:
        codebook, indices = cluster_weights(w, target.cluster, rng=_layer_rng(seed, target.name))
        if q is not None and codebook.size:
            codebook, indices, state.quant, state.codebook_codes = _quantize_codebook(codebook, indices, q)
        state.codebook, state.indices, state.mask = codebook, indices, _zero_mask(indices >= 0)
    elif q is not None:
        params, codes = quantize_weights(
            w, q.weight_bits, symmetric=q.symmetric, per_channel=q.per_channel, method=q.weight_range
        )
        state.quant, state.codes = params, codes
        state.mask = _zero_mask(codes != params.zero_point.reshape((-1,) + (1,) * (w.ndim - 1)))
    else:
        state.values = np.ascontiguousarray(w, dtype=np.float32)
        state.mask = _zero_mask(w != 0)
    return state


def _quantize_codebook(
    codebook: np.ndarray, indices: np.ndarray, q: QuantizeConfig
) -> tuple[np.ndarray, np.ndarray, QuantParams, np.ndarray]:
    """Quantizes a layer's codebook on one grid and merges the centroids that land on the same code.

    The grid minimises the squared error of the weights (each centroid weighted by its members).
    Centroids that share a code become one; a centroid that rounds to zero is dropped and its weights
    become implicit zeros (index -1), stored by the mask like pruned weights. So the codebook holds
    exactly the distinct non-zero values left, and the index width follows them.

    Returns:
        ``(codebook, indices, grid, codes)`` after merging (codebook ascending, codes matching it).
    """
    counts = np.bincount(indices[indices >= 0].ravel(), minlength=codebook.size).astype(np.float32)
    # one grid for the codebook: it is shared by every channel of the layer
    params = fit_grid(
        codebook[None, :], q.weight_bits, symmetric=q.symmetric, method=q.weight_range, weights=counts[None, :]
    )
    codes = quantize(codebook[None, :], params)[0]
    zero = int(params.zero_point[0])
    kept = np.unique(codes[(codes != zero) & (counts > 0)])  # ascending codes = ascending values
    # old centroid -> new index; -1 for a centroid that became zero; entry -1 maps index -1 to -1
    remap = np.full(codebook.size + 1, -1, dtype=np.int16)
    present = np.isin(codes, kept)
    remap[:-1][present] = np.searchsorted(kept, codes[present])
    merged = remap[indices]
    values = dequantize(kept[None, :], params)[0]
    return values.astype(np.float32), merged, params, kept


def _compress_weights(targets: list[Target], seed: int) -> tuple[dict[str, LayerState], dict[str, np.ndarray]]:
    """Every target's compressed state, and the pruned filters (True) of each structured-pruned layer."""
    weights = {t.name: t.module.weight.detach().float().cpu().numpy() for t in targets}
    keeps: dict[str, np.ndarray] = {}
    by_group: dict[str | None, list[Target]] = defaultdict(list)
    for t in targets:
        if t.prune is not None:
            by_group[t.group].append(t)
    for members in by_group.values():
        masks = prune_masks([weights[t.name] for t in members], members[0].prune)  # type: ignore[arg-type]
        keeps.update({t.name: m for t, m in zip(members, masks, strict=True)})
    pruned = {
        t.name: ~keeps[t.name].reshape(keeps[t.name].shape[0], -1).any(axis=1)
        for t in targets
        if t.prune is not None and t.prune.structured
    }
    layers = {t.name: _layer_state(t, weights[t.name], keeps.get(t.name), seed) for t in targets}
    return layers, {name: dead for name, dead in pruned.items() if dead.any()}


class _DeadChannels:
    """The bias and batch-norm affine entries of structured-pruned filters, kept at exactly zero.

    A pruned filter's output after its batch norm is ``beta - mean * gamma / sqrt(var + eps)``, a
    constant that an exported graph cannot always fold (it meets the next convolution's zero
    padding). Zeroing the filter's bias and the norm's ``gamma`` and ``beta`` makes the output exactly
    zero in eval and training mode whatever the running statistics, so the channel is removed as a
    whole (as torch-pruning and NNI do) and batch-norm re-estimation keeps it at zero.
    """

    def __init__(self, model: nn.Module, pruned: dict[str, np.ndarray]) -> None:
        self.entries: list[tuple[torch.Tensor, torch.Tensor]] = []  # (parameter, channel indices)
        if not pruned:
            return
        modules = dict(model.named_modules())
        graph = channel_graph(model)
        if graph.untraceable is not None:
            _log.warning(
                "torch.fx cannot trace %s (%s): the batch norms after structured-pruned filters are left as "
                "they are, so those channels output a constant and an exported graph may keep them",
                type(model).__name__,
                graph.untraceable,
            )
        for name, dead in pruned.items():
            params = [getattr(modules[name], "bias", None)]
            if name in graph.batchnorms:
                norm = modules[graph.batchnorms[name]]
                params += [norm.weight, norm.bias]
            for p in params:
                if isinstance(p, torch.Tensor):
                    self.entries.append((p, torch.from_numpy(np.flatnonzero(dead)).to(p.device)))

    @torch.no_grad()
    def zero(self) -> None:
        """Sets every entry to zero."""
        for p, index in self.entries:
            p.index_fill_(0, index, 0.0)

    @contextlib.contextmanager
    def frozen(self) -> Iterator[None]:
        """Within the block, gradients of the entries are zero (so Adam leaves them at zero)."""
        handles = []
        for p, index in self.entries:
            if p.requires_grad:
                keep = torch.ones_like(p).index_fill_(0, index, 0.0)
                handles.append(p.register_hook(lambda grad, keep=keep: grad * keep))
        try:
            yield
        finally:
            for h in handles:
                h.remove()


def _copy_without(model: nn.Module, skip: list[torch.Tensor]) -> nn.Module:
    """A deep copy of ``model`` whose ``skip`` parameters are left uninitialised (they are overwritten)."""
    memo: dict[int, object] = {
        id(p): nn.Parameter(torch.empty_like(p), requires_grad=p.requires_grad)
        if isinstance(p, nn.Parameter)
        else torch.empty_like(p)
        for p in skip
    }
    return copy.deepcopy(model, memo)


def _write_weight(weight: torch.Tensor, state: LayerState) -> None:
    if weight.device.type == "cpu" and weight.dtype == torch.float32 and weight.is_contiguous():
        state.weight(out=weight.detach().numpy())  # decode straight into the parameter's memory
    else:
        weight.copy_(torch.from_numpy(state.weight()).to(weight.device, weight.dtype))


def install_activation_quant(model: nn.Module, activations: dict[str, ActivationQuant]) -> None:
    """Registers each :class:`ActivationQuant` as a forward pre-hook of the named module."""
    modules = dict(model.named_modules())
    for name, hook in activations.items():
        modules[name].register_forward_pre_hook(hook)


def _calibrate_activations(
    model: nn.Module, targets: list[Target], calibration: CalibrationData
) -> dict[str, ActivationQuant]:
    bits = {
        t.name: t.quantize.activation_bits for t in targets if t.quantize is not None and t.quantize.activation_bits
    }
    if not bits:
        return {}
    modules = dict(model.named_modules())
    device = next(model.parameters()).device
    calibration.check_balance(min(ACTIVATION_CALIBRATION_IMAGES, len(calibration)), purpose="activation calibration")
    batches = list(calibration.batches(128, device=device, limit=ACTIVATION_CALIBRATION_IMAGES))
    with calibration.autocast(device):
        ranges = observe_activation_ranges(model, {n: modules[n] for n in bits}, batches)
    activations = {n: ActivationQuant.from_range(*ranges[n], bits[n]) for n in bits}
    install_activation_quant(model, activations)
    return activations


def compress(
    model: nn.Module,
    plan: CompressionPlan,
    calibration: CalibrationData | None = None,
    *,
    filter_fn: LayerFilter | None = None,
) -> nn.Module:
    """Returns a compressed copy of ``model``; ``model`` itself is never modified.

    The copy's layers hold the compressed weights as floats (dequantized), so it runs anywhere the
    original runs; structured pruning removes whole channels (a pruned filter's bias and the affine
    parameters of the batch norm that alone reads the layer's output are zeroed, so the channel
    outputs exactly zero; for a model torch.fx cannot trace, the batch norms are left as they are and
    a warning is logged); its :class:`~moo_compress.compress.CompressionState` (``compression_state(copy)``)
    holds masks, codebooks and indices, grids and codes for size accounting and export. The result
    is deterministic: the same model, plan (including its seed) and calibration give the same weights.

    Args:
        model: The network (not modified; any device).
        plan: What to do, see :class:`CompressionPlan`.
        calibration: Training images for recovery steps and activation observers; required when
            the plan re-estimates batch norm, fine-tunes or quantizes activations.
        filter_fn: Which modules are candidate layers (default: Conv2d and Linear).

    Raises:
        ConfigError: for a plan that does not fit the model (patterns matching nothing, overlapping
            groups), missing calibration data, or an already-compressed model.
    """
    _check_inputs(model, plan, calibration)
    targets = resolve_targets(model, plan, filter_fn or is_compressible)  # read-only on the input
    layers, pruned = _compress_weights(targets, plan.seed)
    compressed = _copy_without(model, [t.module.weight for t in targets])
    modules = dict(compressed.named_modules())
    targets = [dataclasses.replace(t, module=modules[t.name]) for t in targets]
    with torch.no_grad():
        for t in targets:
            _write_weight(t.module.weight, layers[t.name])
    dead = _DeadChannels(compressed, pruned)
    dead.zero()
    state = CompressionState(plan, layers)
    setattr(compressed, STATE_ATTRIBUTE, state)
    if calibration is not None:
        recovery = plan.recovery
        if recovery.finetune_steps:  # also with no compressed layer: the reference gets the recovery its plans get
            if recovery.finetune_bn == "frozen" and recovery.bn_images:  # fine-tuning then runs on these statistics
                recalibrate_batchnorm(compressed, calibration, n_images=recovery.bn_images,
                                      batch_size=recovery.bn_batch_size, seed=plan.seed)
            with dead.frozen():
                state.layers = finetune(compressed, layers, calibration, recovery, seed=plan.seed,
                                        teacher=model if recovery.finetune_distill > 0 else None)
            dead.zero()  # exact zeros whatever the optimiser did
        frozen = recovery.finetune_steps and recovery.finetune_bn == "frozen"  # trained on these statistics: kept
        if recovery.bn_images and not frozen:
            recalibrate_batchnorm(
                compressed,
                calibration,
                n_images=recovery.bn_images,
                batch_size=recovery.bn_batch_size,
                seed=plan.seed,
            )
        state.activations = _calibrate_activations(compressed, targets, calibration)
    return compressed
