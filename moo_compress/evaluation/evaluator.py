"""Fast top-1 evaluation of a model over uint8 NHWC image arrays.

Images stay uint8 until they reach the device; each batch is converted to float, normalised with one
fused multiply-add and fed in channels-last layout (a permuted NHWC tensor *is* channels-last, so no
copy is needed), under ``torch.inference_mode`` and, optionally, bf16 autocast. Batch norms that follow
a convolution are folded into its weights first (``torch.fx.experimental.optimization.fuse``), which
saves one pass over every activation tensor.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from moo_compress.errors import ConfigError, DataFormatError
from moo_compress.evaluation.runtime import autocast, check_precision, default_batch_size, resolve_device

__all__ = ["Evaluator", "evaluate_accuracy", "check_images", "fold_batchnorm"]


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """An inference copy of ``model`` with every batch norm that follows a convolution folded into it.

    ``model`` itself is only switched to eval mode. A model that torch.fx cannot trace (data-dependent
    control flow) is copied unchanged.
    """
    model.eval()
    if any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules()):
        from torch.fx.experimental.optimization import fuse

        try:
            return fuse(model)
        except Exception:  # torch.fx raises several types for untraceable code; folding is only an optimisation
            pass
    return copy.deepcopy(model)


def check_images(images: np.ndarray, labels: np.ndarray | None = None) -> None:
    """Raises DataFormatError unless ``images`` is uint8 (N, H, W, 3) and ``labels`` matches N."""
    if not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        shape = getattr(images, "shape", None)
        dtype = getattr(images, "dtype", type(images).__name__)
        raise DataFormatError(f"images must be a uint8 array of shape (N, H, W, 3); got {dtype} {shape}")
    if labels is not None and (np.ndim(labels) != 1 or len(labels) != len(images)):
        raise DataFormatError(f"labels must be a vector of {len(images)} class indices; got shape {np.shape(labels)}")


class Evaluator:
    """Batched inference of one model over uint8 images.

    The model is switched to eval mode; inference runs on a copy on ``device``, in channels-last layout,
    with batch norms folded into the convolutions before them (:func:`fold_batchnorm`), so later changes
    to ``model`` are not seen by this evaluator.

    Args:
        model: The network.
        mean: Per-channel normalisation mean on [0, 1] pixels.
        std: Per-channel normalisation std on [0, 1] pixels.
        device: ``cpu``, ``cuda``, ``cuda:N`` or ``auto``.
        precision: ``fp32`` or ``bf16`` (autocast).
        batch_size: Most images per forward pass; ``None`` picks one for the device when predicting
            (:func:`~moo_compress.evaluation.runtime.default_batch_size`). Halved automatically on an
            out-of-memory error. An array is cut into equal batches (100 images at most 64 per batch
            run as 50 + 50, not 64 + 36).
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        mean: Sequence[float],
        std: Sequence[float],
        device: str | torch.device = "cpu",
        precision: str = "fp32",
        batch_size: int | None = None,
    ) -> None:
        if batch_size is not None and batch_size < 1:
            raise ConfigError(f"batch_size must be positive, got {batch_size}")
        if len(mean) != 3 or len(std) != 3 or min(std) <= 0:
            raise ConfigError(f"mean and std must be three numbers (std > 0), got {mean}, {std}")
        self.device = resolve_device(device)
        self.precision = check_precision(precision)
        self.batch_size = batch_size
        self.model = fold_batchnorm(model).to(self.device, memory_format=torch.channels_last)
        std_t = torch.tensor(std, dtype=torch.float32, device=self.device).view(1, 3, 1, 1)
        mean_t = torch.tensor(mean, dtype=torch.float32, device=self.device).view(1, 3, 1, 1)
        # (x / 255 - mean) / std  ==  x * scale + shift
        self._scale = 1.0 / (255.0 * std_t)
        self._shift = -mean_t / std_t

    def _batch(self, images: np.ndarray) -> torch.Tensor:
        # np.array copies: slices of a read-only memory map cannot back a torch tensor.
        x = torch.from_numpy(np.array(images, dtype=np.uint8, order="C")).to(self.device, non_blocking=True)
        x = x.permute(0, 3, 1, 2).float()  # NCHW view of NHWC memory = channels-last
        return x.mul_(self._scale).add_(self._shift)

    @torch.inference_mode()
    def predict(self, images: np.ndarray) -> np.ndarray:
        """Predicted class index of every image, as an int64 array.

        A batch that runs out of device memory is retried at half the size (and the smaller size is
        kept), so the batch size adapts to the memory of the GPU at hand.
        """
        check_images(images)
        out = torch.empty(len(images), dtype=torch.int64)
        limit = self.batch_size or default_batch_size(self.device)
        start = 0
        with autocast(self.device, self.precision):
            while start < len(images):
                left = len(images) - start
                stop = start + math.ceil(left / math.ceil(left / limit))  # equal batches of at most `limit`
                try:
                    logits = self.model(self._batch(images[start:stop]))
                except torch.OutOfMemoryError:
                    if limit == 1:
                        raise
                    limit = self.batch_size = max(1, limit // 2)
                    if self.device.type == "cuda":
                        torch.cuda.empty_cache()
                    continue
                out[start:stop] = logits.argmax(1).cpu()
                start = stop
        return out.numpy()

    def accuracy(self, images: np.ndarray, labels: np.ndarray) -> float:
        """Top-1 accuracy in [0, 1] of the model on ``images``."""
        check_images(images, labels)
        if len(images) == 0:
            raise DataFormatError("cannot compute accuracy on zero images")
        return float(np.mean(self.predict(images) == np.asarray(labels)))


def evaluate_accuracy(
    model: nn.Module,
    images: np.ndarray,
    labels: np.ndarray,
    *,
    mean: Sequence[float],
    std: Sequence[float],
    device: str | torch.device = "cpu",
    precision: str = "fp32",
    batch_size: int | None = None,
) -> float:
    """Top-1 accuracy in [0, 1] of ``model`` on uint8 NHWC ``images``; see :class:`Evaluator`."""
    evaluator = Evaluator(model, mean=mean, std=std, device=device, precision=precision, batch_size=batch_size)
    return evaluator.accuracy(images, labels)
