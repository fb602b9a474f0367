"""Training a CIFAR model from scratch with a standard recipe, resumable epoch by epoch.

The recipe: SGD with Nesterov momentum, a OneCycle learning-rate schedule, label smoothing, weight
decay, random crop (reflect-pad 4) and horizontal flip, bf16 autocast where the hardware supports it.
Batches are sampled and augmented from uint8 arrays on the device, so no DataLoader workers are needed.

Resumption: after every epoch the full training state is written atomically to a state file; a new
run with the same settings continues from the last finished epoch. Per-epoch shuffling and
augmentation are seeded by ``(seed, epoch)``, so a resumed run sees the same batches as an
uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from moo_compress.data import ArrayDataset
from moo_compress.errors import ConfigError
from moo_compress.evaluation import Evaluator, autocast, resolve_device
from moo_compress.fileio import atomic_open

__all__ = ["TrainRecipe", "TrainResult", "augment_batch", "bf16_supported", "train_model"]


@dataclass(frozen=True)
class TrainRecipe:
    """Hyper-parameters of a training run (round-trips through :meth:`to_dict` / :meth:`from_dict`).

    Attributes:
        epochs: Passes over the training set.
        batch_size: Images per step.
        lr: Peak learning rate of the OneCycle schedule.
        momentum: SGD (Nesterov) momentum.
        weight_decay: L2 penalty on all parameters.
        label_smoothing: Cross-entropy label smoothing.
        warmup_fraction: Fraction of steps spent warming up (OneCycle ``pct_start``).
        augment: Random crop (reflect padding 4) and horizontal flip.
        precision: ``auto`` (bf16 where supported), ``bf16`` or ``fp32``.
        seed: Seed of initialisation, shuffling and augmentation.
    """

    epochs: int = 30
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    label_smoothing: float = 0.1
    warmup_fraction: float = 0.25
    augment: bool = True
    precision: str = "auto"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise ConfigError(f"epochs must be at least 1, got {self.epochs}")
        if self.batch_size < 1:
            raise ConfigError(f"batch_size must be at least 1, got {self.batch_size}")
        if not self.lr > 0:
            raise ConfigError(f"lr must be positive, got {self.lr}")
        if not 0 <= self.label_smoothing < 1:
            raise ConfigError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")
        if not 0 < self.warmup_fraction < 1:
            raise ConfigError(f"warmup_fraction must be in (0, 1), got {self.warmup_fraction}")
        if self.precision not in ("auto", "bf16", "fp32"):
            raise ConfigError(f"precision must be auto, bf16 or fp32, got {self.precision!r}")

    def to_dict(self) -> dict[str, Any]:
        """The recipe as a JSON-able dict."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainRecipe:
        """Builds a recipe from :meth:`to_dict` output; unknown keys are an error."""
        unknown = set(data) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ConfigError(f"unknown recipe keys {sorted(unknown)}")
        return cls(**data)


@dataclass(frozen=True)
class TrainResult:
    """What a finished (or partial, with ``max_steps``) run produced."""

    epochs_done: int
    steps_done: int
    final_loss: float
    test_accuracy: float | None
    seconds: float
    precision: str


def bf16_supported(device: torch.device) -> bool:
    """Whether bf16 autocast runs natively (CUDA with bf16, or a CPU with AVX512-BF16/AMX)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def augment_batch(images: torch.Tensor, generator: torch.Generator, *, pad: int = 4) -> torch.Tensor:
    """Random crop after reflect padding, and random horizontal flip, of a uint8 NHWC batch."""
    n, h, w, _ = images.shape
    x = images.permute(0, 3, 1, 2).float()
    x = F.pad(x, (pad, pad, pad, pad), mode="reflect")
    dev = images.device
    oy = torch.randint(0, 2 * pad + 1, (n,), generator=generator).to(dev)
    ox = torch.randint(0, 2 * pad + 1, (n,), generator=generator).to(dev)
    flip = torch.rand(n, generator=generator).to(dev) < 0.5
    rows = (oy[:, None] + torch.arange(h, device=dev)[None, :])[:, None, :, None]
    cols = ox[:, None] + torch.arange(w, device=dev)[None, :]
    cols = torch.where(flip[:, None], cols.flip(1), cols)[:, None, None, :]
    batch = torch.arange(n, device=dev)[:, None, None, None]
    chans = torch.arange(x.shape[1], device=dev)[None, :, None, None]
    out = x[batch, chans, rows, cols]
    return out.permute(0, 2, 3, 1).to(torch.uint8)


def _state_dict(model: nn.Module, opt: torch.optim.Optimizer, sched: Any, epoch: int, key: dict[str, Any]) -> dict:
    return {"model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
            "epoch": epoch, "key": key}


def train_model(
    model: nn.Module,
    train: ArrayDataset,
    *,
    recipe: TrainRecipe,
    mean: tuple[float, float, float],
    std: tuple[float, float, float],
    device: str | torch.device = "auto",
    test: ArrayDataset | None = None,
    state_path: str | Path | None = None,
    progress: bool = True,
    max_steps: int | None = None,
    log: Callable[[str], None] = print,
) -> TrainResult:
    """Trains ``model`` in place on ``train`` with ``recipe``.

    Args:
        model: The network (freshly initialised, or pretrained for fine-tuning).
        train: Training images (uint8 NHWC) and labels.
        recipe: Hyper-parameters.
        mean: Input normalisation mean on [0, 1] pixels.
        std: Input normalisation std.
        device: ``cpu``, ``cuda`` or ``auto``.
        test: Evaluated after every epoch when given.
        state_path: Where the resumable state is written after each epoch (and read on start).
        progress: Show a tqdm progress bar with loss, throughput and ETA.
        max_steps: Stop after this many optimisation steps (for smoke tests).
        log: Receives one line per finished epoch.

    Returns:
        A :class:`TrainResult`; the model holds the trained weights.
    """
    from tqdm.auto import tqdm

    dev = resolve_device(device)
    precision = recipe.precision
    if precision == "auto":
        precision = "bf16" if bf16_supported(dev) else "fp32"
    torch.manual_seed(recipe.seed)
    model.to(dev, memory_format=torch.channels_last)
    steps_per_epoch = math.ceil(len(train) / recipe.batch_size)
    total_steps = recipe.epochs * steps_per_epoch
    opt = torch.optim.SGD(model.parameters(), lr=recipe.lr, momentum=recipe.momentum, nesterov=True,
                          weight_decay=recipe.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=recipe.lr, total_steps=total_steps,
                                                pct_start=recipe.warmup_fraction)
    key = {"recipe": recipe.to_dict(), "train": train.fingerprint, "model": type(model).__name__}
    state_file = Path(state_path) if state_path is not None else None
    start_epoch = _resume(state_file, key, model, opt, sched, dev=dev, epochs=recipe.epochs, log=log)

    steps = _Steps(model, train, recipe, opt, sched, dev=dev, precision=precision, mean=mean, std=std)
    steps_done, loss_value, test_acc = start_epoch * steps_per_epoch, float("nan"), None
    t0 = time.perf_counter()
    bar = tqdm(total=total_steps, initial=steps_done, disable=not progress, unit="step", dynamic_ncols=True)
    try:
        for epoch in range(start_epoch, recipe.epochs):
            steps_done, loss_value, running, stopped = steps.epoch(epoch, bar, steps_done, loss_value, max_steps)
            if stopped:
                return TrainResult(epoch, steps_done, loss_value, None, time.perf_counter() - t0, precision)
            if test is not None:
                evaluator = Evaluator(model, mean=mean, std=std, device=dev, precision=precision)
                test_acc = evaluator.accuracy(test.images, test.labels)
            if state_file is not None:
                with atomic_open(state_file, "wb") as handle:
                    torch.save(_state_dict(model, opt, sched, epoch + 1, key), handle)
            acc = f", test top-1 {100 * test_acc:.2f}%" if test_acc is not None else ""
            (bar.write if progress else log)(f"epoch {epoch + 1}/{recipe.epochs}: loss {running:.4f}{acc}")
    finally:
        bar.close()
    if test is not None and test_acc is None:  # resumed a run whose epochs were all done
        test_acc = Evaluator(model, mean=mean, std=std, device=dev, precision=precision).accuracy(
            test.images, test.labels)
    model.eval()
    return TrainResult(recipe.epochs, steps_done, loss_value, test_acc, time.perf_counter() - t0, precision)


def _resume(state_file: Path | None, key: dict[str, Any], model: nn.Module, opt: torch.optim.Optimizer, sched: Any,
            *, dev: torch.device, epochs: int, log: Callable[[str], None]) -> int:
    """Loads the state of a run with the same ``key`` from ``state_file``, if there is one; returns the
    number of epochs it had finished (0 when starting afresh)."""
    if state_file is None or not state_file.is_file():
        return 0
    state = torch.load(state_file, map_location=dev, weights_only=True)
    if state.get("key") != key:
        raise ConfigError(f"{state_file} holds the state of a different run (other recipe, data or model); "
                          "delete it or pass --no-resume")
    model.load_state_dict(state["model"])
    opt.load_state_dict(state["optimizer"])
    sched.load_state_dict(state["scheduler"])
    start_epoch = int(state["epoch"])
    log(f"resuming from {state_file} after epoch {start_epoch}/{epochs}")
    return start_epoch


class _Steps:
    """The optimisation steps of one run: batches drawn, augmented and normalised on the device."""

    def __init__(self, model: nn.Module, train: ArrayDataset, recipe: TrainRecipe, opt: torch.optim.Optimizer,
                 sched: Any, *, dev: torch.device, precision: str, mean: tuple[float, float, float],
                 std: tuple[float, float, float]) -> None:
        self.model, self.train, self.recipe, self.opt, self.sched = model, train, recipe, opt, sched
        self.dev, self.precision = dev, precision
        self.mean = torch.tensor(mean, device=dev).view(1, 3, 1, 1)
        self.std = torch.tensor(std, device=dev).view(1, 3, 1, 1)
        self.labels = torch.from_numpy(np.asarray(train.labels, dtype=np.int64))
        self.per_epoch = math.ceil(len(train) / recipe.batch_size)

    def epoch(self, epoch: int, bar: Any, steps_done: int, loss_value: float,
              max_steps: int | None) -> tuple[int, float, float, bool]:
        """Runs the steps of ``epoch`` (stopping once ``max_steps`` are done in all); returns the steps
        done in all, the last step's loss, the epoch's running loss, and whether ``max_steps`` stopped it."""
        recipe, dev = self.recipe, self.dev
        self.model.train()
        order = np.random.default_rng([recipe.seed, epoch]).permutation(len(self.train))
        gen = torch.Generator().manual_seed(recipe.seed * 100_003 + epoch)
        bar.set_description(f"epoch {epoch + 1}/{recipe.epochs}")
        seen, t_epoch, running = 0, time.perf_counter(), 0.0
        for step in range(self.per_epoch):
            idx = np.sort(order[step * recipe.batch_size:(step + 1) * recipe.batch_size])
            images = torch.from_numpy(np.array(self.train.images[idx])).to(dev, non_blocking=True)
            if recipe.augment:
                images = augment_batch(images, gen)
            x = images.permute(0, 3, 1, 2).float().div_(255).sub_(self.mean).div_(self.std)
            y = self.labels[idx].to(dev, non_blocking=True)
            with autocast(dev, self.precision):
                loss = F.cross_entropy(self.model(x), y, label_smoothing=recipe.label_smoothing)
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
            self.sched.step()
            loss_value = float(loss.detach())
            running = loss_value if step == 0 else 0.9 * running + 0.1 * loss_value
            seen += len(idx)
            steps_done += 1
            bar.update(1)
            bar.set_postfix(loss=f"{running:.3f}", img_s=f"{seen / (time.perf_counter() - t_epoch):.0f}")
            if max_steps is not None and steps_done >= max_steps:
                return steps_done, loss_value, running, True
        return steps_done, loss_value, running, False
