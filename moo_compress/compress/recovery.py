"""Accuracy recovery after compression: batch-norm re-estimation and short STE fine-tuning, optionally
distilled from the original model.

Fine-tuning keeps the compression exact. Each compressed layer trains a latent tensor that is
projected onto its compressed form in every forward pass:

* clustered: the ``k`` centroids are the trainable values and the cluster assignment is fixed
  (a centroid's gradient is the sum of its members' gradients, as in TF-MOT's cluster-preserving
  training); quantized clustered layers fake-quantize the centroids on their fixed grid;
* quantized: the weights are masked, then fake-quantized on the fixed per-channel grid;
* pruned: the weights are masked.

Rounding passes gradients straight through (STE). Masks, assignments and grids never change, so
every exact property of the plan (sparsity, distinct values, levels) holds after fine-tuning.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from moo_compress.compress.calibration import CalibrationData
from moo_compress.compress.config import RecoveryConfig
from moo_compress.compress.quantize import QuantParams, dequantize, quantize
from moo_compress.compress.state import LayerState
from moo_compress.errors import ConfigError

__all__ = ["recalibrate_batchnorm", "bn_batch_size", "BN_BATCH_PIXELS", "finetune", "distillation_loss", "augmenter"]


class _MomentAccumulator:
    """A forward pre-hook that accumulates the per-channel mean and variance of a layer's input.

    Batches are merged with Chan et al.'s pairwise update (batch mean and sum of squared deviations,
    in float64), so the result is the population mean and variance over every image seen, as if all
    images had been one batch -- not an average of per-batch variances, which under-estimates the
    variance by the spread of the batch means.
    """

    def __init__(self) -> None:
        self.count = 0
        self.mean: torch.Tensor | None = None
        self.m2: torch.Tensor | None = None

    def __call__(self, module: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
        x = args[0].detach().float()
        dims = [d for d in range(x.dim()) if d != 1]
        n = x.numel() // x.shape[1]
        var, mean = torch.var_mean(x, dim=dims, correction=0)
        mean, m2 = mean.double(), var.double() * n
        if self.mean is None:
            self.count, self.mean, self.m2 = n, mean, m2
            return
        total = self.count + n
        delta = mean - self.mean
        self.mean = self.mean + delta * (n / total)
        self.m2 = self.m2 + m2 + delta.square() * (self.count * n / total)
        self.count = total


#: Automatic batch-norm re-estimation batches hold at most this many pixels (1,024 CIFAR images).
BN_BATCH_PIXELS = 1024 * 32 * 32


def bn_batch_size(image_shape: tuple[int, ...], batch_size: int | None) -> int:
    """The largest batch of batch-norm re-estimation: ``batch_size``, or by :data:`BN_BATCH_PIXELS`."""
    if batch_size is not None:
        return batch_size
    return max(8, BN_BATCH_PIXELS // (int(image_shape[0]) * int(image_shape[1])))


def _canonical_order(images: np.ndarray) -> np.ndarray:
    # Order images by a hash of their bytes, so that the batches a seed forms depend on the set of
    # images only, never on the order the caller happened to pass them in.
    keys = [hashlib.blake2b(np.ascontiguousarray(x).data, digest_size=8).digest() for x in images]
    return np.argsort(np.array(keys, dtype="S8"), kind="stable")


@torch.no_grad()
def recalibrate_batchnorm(
    model: nn.Module,
    calibration: CalibrationData,
    *,
    n_images: int,
    batch_size: int | None = None,
    seed: int = 0,
) -> int:
    """Re-estimates every batch-norm layer's running mean and variance on the first ``n_images`` images.

    The images are cut into equal batches of at most ``batch_size`` (None: see
    :func:`bn_batch_size`), drawn by a seeded shuffle of the images' canonical order, so every batch
    mixes the classes and the result depends on which images are used, not on their order. The batch
    norms run in training mode, as during training, while a hook accumulates each one's input
    moments over all images; the running statistics are then set to those population moments
    (variance with Bessel's correction, as PyTorch keeps it), not to an average of per-batch
    variances. All other layers stay in eval mode (no dropout). Returns the number of batch-norm
    layers updated.
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    if not norms:
        return 0
    stop = min(n_images, len(calibration))
    calibration.check_balance(stop, purpose="batch-norm re-estimation")
    device = next(model.parameters()).device
    prefix = calibration.images[:stop]
    order = _canonical_order(prefix)[np.random.default_rng([seed, 0xB4]).permutation(stop)]
    batches = np.array_split(order, -(-stop // bn_batch_size(prefix.shape[1:3], batch_size)))
    was_training = model.training
    model.eval()
    accumulators = [_MomentAccumulator() for _ in norms]
    handles = [m.register_forward_pre_hook(a) for m, a in zip(norms, accumulators, strict=True)]
    for m in norms:
        m.reset_running_stats()  # num_batches_tracked then counts this pass's batches
        m.train()
    try:
        with calibration.autocast(device):
            for index in batches:
                model(calibration.tensor(index, device))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    for m, a in zip(norms, accumulators, strict=True):
        if a.mean is None:  # the layer was not reached (an unused branch): leave it as it was
            continue
        m.running_mean.copy_(a.mean.to(m.running_mean.dtype))
        m.running_var.copy_((a.m2 / max(a.count - 1, 1)).to(m.running_var.dtype))
    return len(norms)


def _ste_round_grid(
    x: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor, qmin: int, qmax: int
) -> torch.Tensor:
    q = torch.clamp(torch.round(x / scale) + zero_point, qmin, qmax)
    y = (q - zero_point) * scale
    return x + (y - x).detach()


def _grid_tensors(quant: QuantParams, ndim: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    shape = (-1,) + (1,) * (ndim - 1)
    scale = torch.from_numpy(quant.scale.copy()).to(device).view(shape)
    zero = torch.from_numpy(quant.zero_point.astype(np.float32)).to(device).view(shape)
    return scale, zero


class _Lookup(torch.autograd.Function):
    """``table[index]`` whose backward sums each entry's gradients with ``bincount`` (serial, in float64): the
    indexing backward (an accumulating scatter) adds them in thread order, which made fine-tuning of clustered
    layers differ between runs in the last bits on more than one thread."""

    @staticmethod
    def forward(ctx: Any, table: torch.Tensor, index: torch.Tensor) -> torch.Tensor:  # noqa: D102
        ctx.save_for_backward(index)
        ctx.size = table.numel()
        return table[index]

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:  # noqa: D102
        (index,) = ctx.saved_tensors
        summed = torch.bincount(index, weights=grad.reshape(-1).double(), minlength=ctx.size)
        return summed.to(grad.dtype), None


class _Projector:
    """Holds one layer's latent tensor and projects it onto the layer's compressed form."""

    def __init__(self, state: LayerState, device: torch.device) -> None:
        self.state = state
        if state.kind == "codebook":
            self.latent = nn.Parameter(torch.from_numpy(state.codebook.copy()).to(device))  # type: ignore[union-attr]
            index = state.indices.astype(np.int64).ravel()  # type: ignore[union-attr]
            index[index < 0] = state.codebook.size  # type: ignore[union-attr]  # -> appended zero
            self.index = torch.from_numpy(index).to(device)
            if state.quant is not None:
                self.scale, self.zero = _grid_tensors(state.quant, 1, device)
        else:
            self.latent = nn.Parameter(torch.from_numpy(np.array(state.weight(), dtype=np.float32)).to(device))
            self.mask = None if state.mask is None else torch.from_numpy(state.mask).to(device)
            if state.quant is not None:
                self.scale, self.zero = _grid_tensors(state.quant, len(state.shape), device)

    def _grid(self, x: torch.Tensor) -> torch.Tensor:
        q = self.state.quant
        return x if q is None else _ste_round_grid(x, self.scale, self.zero, q.qmin, q.qmax)

    def weight(self) -> torch.Tensor:
        if self.state.kind == "codebook":
            table = torch.cat([self._grid(self.latent), self.latent.new_zeros(1)])
            return _Lookup.apply(table, self.index).view(self.state.shape)
        w = self.latent if self.mask is None else self.latent * self.mask
        return self._grid(w)

    def final_state(self) -> LayerState:
        """The layer state after training: same mask, assignment and grid, new values."""
        s = self.state
        latent = self.latent.detach().cpu().numpy().astype(np.float32)
        if s.kind == "codebook":
            if s.quant is None:
                return dataclasses.replace(s, codebook=latent, _encoding=None)
            codes = quantize(latent[None, :], s.quant)
            return dataclasses.replace(
                s, codebook=dequantize(codes, s.quant)[0], codebook_codes=codes[0], _encoding=None
            )
        if s.mask is not None:
            latent = latent * s.mask
        if s.quant is None:
            return dataclasses.replace(s, values=latent, _encoding=None)
        codes = quantize(latent.reshape(s.quant.scale.size, -1), s.quant).reshape(s.shape)
        mask = codes != s.quant.zero_point.reshape((-1,) + (1,) * (len(s.shape) - 1))
        return dataclasses.replace(s, codes=codes, mask=None if mask.all() else mask, _encoding=None)


def augmenter(name: str | None, seed: int, step: int) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """The per-image augmentation of fine-tuning step ``step`` (None: none), seeded by ``(seed, step)``.

    ``augmix``: torchvision's ``AugMix`` with ``all_ops=False`` (no brightness, contrast, colour or sharpness:
    they overlap the benchmark corruptions). It draws from torch's global generator, so each call runs under
    a forked generator seeded for the step, leaving the caller's random state as it was.
    """
    if name is None:
        return None
    from torchvision.transforms import AugMix

    mix = AugMix(all_ops=False)
    state = {"calls": 0}

    def augment(image: torch.Tensor) -> torch.Tensor:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int.from_bytes(hashlib.sha256(f"{seed}/{step}/{state['calls']}".encode()).digest()[:7],
                                             "little"))
            state["calls"] += 1
            return mix(image)

    return augment


def distillation_loss(student: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
    """``T^2 * KL(softmax(teacher / T) || softmax(student / T))``, averaged over the batch (Hinton et al.)."""
    return F.kl_div(F.log_softmax(student / temperature, dim=1), F.log_softmax(teacher / temperature, dim=1),
                    reduction="batchmean", log_target=True) * temperature**2


def finetune(
    model: nn.Module,
    layers: dict[str, LayerState],
    calibration: CalibrationData,
    config: RecoveryConfig,
    *,
    seed: int,
    teacher: nn.Module | None = None,
) -> dict[str, LayerState]:
    """Trains ``model`` for ``config.finetune_steps`` Adam steps keeping its compression (see module doc).

    Biases and batch-norm parameters train freely. The compressed weights are written back into the
    model, and the updated layer states are returned. Batches are drawn with ``seed`` from the training
    pool (the first ``config.finetune_images`` calibration images, or all of them); the loss is label
    cross-entropy, plus ``config.finetune_distill`` times :func:`distillation_loss` against ``teacher``'s
    logits (the original model, in eval mode) when that weight is above zero; ``config.finetune_label_weight``
    weighs the label term (0: distillation alone).

    Raises:
        ConfigError: if the calibration data has no labels, holds fewer images than the pool, or
            distillation is asked for without a teacher.
    """
    if calibration.labels is None:
        raise ConfigError("fine-tuning needs labelled calibration data; pass CalibrationData(..., labels=...)")
    pool = len(calibration) if config.finetune_images is None else config.finetune_images
    if pool > len(calibration):
        raise ConfigError(f"recovery.finetune_images={pool} but the calibration data holds {len(calibration)} "
                          "images; pass more images (--calibration-images) or lower finetune_images")
    distill = config.finetune_distill > 0
    if distill and teacher is None:
        raise ConfigError("recovery.finetune_distill > 0 needs the original model as the teacher")
    device = next(model.parameters()).device
    modules = dict(model.named_modules())
    projectors = {name: _Projector(state, device) for name, state in layers.items()}
    frozen = {id(modules[name].weight) for name in layers}
    free = [p for p in model.parameters() if id(p) not in frozen and p.requires_grad]
    optimizer = torch.optim.Adam([p.latent for p in projectors.values()] + free, lr=config.finetune_lr)
    rng = np.random.default_rng([seed, 1])
    labels = torch.from_numpy(calibration.labels)  # type: ignore[arg-type]
    order = rng.permutation(pool)
    cursor = 0
    was_training = model.training
    teacher_training = teacher.training if teacher is not None else False
    model.train(config.finetune_bn == "batch")
    if teacher is not None:
        teacher.eval()
    try:
        for step in range(config.finetune_steps):
            if cursor + config.finetune_batch_size > len(order):
                order, cursor = rng.permutation(pool), 0
            index = np.sort(order[cursor : cursor + config.finetune_batch_size])
            cursor += config.finetune_batch_size
            x = calibration.tensor(index, device, augment=augmenter(config.finetune_augment, seed, step))
            y = labels[index].to(device)
            weights = {f"{name}.weight": p.weight() for name, p in projectors.items()}
            logits = functional_call(model, weights, (x,))
            loss = config.finetune_label_weight * F.cross_entropy(logits, y) if config.finetune_label_weight else 0.0
            if distill:
                with torch.no_grad():
                    target = teacher(x)  # type: ignore[misc]
                loss = loss + config.finetune_distill * distillation_loss(logits, target, config.finetune_temperature)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    finally:
        model.train(was_training)
        if teacher is not None:
            teacher.train(teacher_training)
    updated = {name: p.final_state() for name, p in projectors.items()}
    with torch.no_grad():
        for name, state in updated.items():
            w = modules[name].weight
            w.copy_(torch.from_numpy(state.weight()).to(w.device, w.dtype))
    return updated
