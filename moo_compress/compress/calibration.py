"""Calibration data: the few training images that batch-norm re-estimation, activation observers and
short fine-tuning read, kept as uint8 NHWC arrays with the model's normalisation.

Consumers read a *prefix* of the images (``bn_images``, the activation observers' 512), so the order
matters: :meth:`CalibrationData.from_dataset` interleaves the classes (see
:func:`~moo_compress.data.balanced_order`), so every prefix is class-balanced and every batch mixes
the classes. A class-sorted order would show a 512-image prefix of a 5,000-image pool almost nothing
but the first class.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from moo_compress.data.subsets import balanced_order
from moo_compress.errors import ConfigError, DataFormatError

__all__ = ["CalibrationData", "DEFAULT_CALIBRATION_IMAGES", "calibration_size"]

_log = logging.getLogger(__name__)

#: Calibration images when neither the user nor the recovery asks for a number (activation observers).
DEFAULT_CALIBRATION_IMAGES = 512


def calibration_size(requested: int | None, bn_images: int = 0) -> int:
    """Training images to load for calibration: ``requested`` (``--calibration-images``), else the
    recovery's ``bn_images``, else :data:`DEFAULT_CALIBRATION_IMAGES` (the one rule the search and
    re-evaluation share, so that their cached evaluations match)."""
    return int(requested or bn_images or DEFAULT_CALIBRATION_IMAGES)


@dataclass(frozen=True, eq=False)
class CalibrationData:
    """Images (and optionally labels) for calibration, normalised on the fly as the model expects.

    Attributes:
        images: uint8 array (N, H, W, 3), as :class:`~moo_compress.data.ArrayDataset` holds them.
        mean: Per-channel normalisation mean on [0, 1] pixels (the model's, e.g. ``PretrainedModel.mean``).
        std: Per-channel normalisation std on [0, 1] pixels.
        labels: int class indices (N,); needed only by fine-tuning.
        precision: ``fp32``, or ``bf16`` to run batch-norm re-estimation and activation observers
            under bf16 autocast (an order of magnitude faster on CPUs with bf16 units, with the same
            accuracy after re-estimation in our VGG-19 check); fine-tuning always runs in fp32.

    Example:
        >>> calib = CalibrationData.from_dataset(train, mean=pre.mean, std=pre.std, n=500, seed=0)
        >>> small = compress(pre.model, plan, calibration=calib)
    """

    images: np.ndarray
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    labels: np.ndarray | None = None
    precision: str = "fp32"

    def __post_init__(self) -> None:
        if self.precision not in ("fp32", "bf16"):
            raise ConfigError(f"CalibrationData.precision must be 'fp32' or 'bf16', got {self.precision!r}")
        x = self.images
        if not isinstance(x, np.ndarray) or x.dtype != np.uint8 or x.ndim != 4 or x.shape[-1] != 3 or len(x) == 0:
            raise DataFormatError(
                f"CalibrationData.images must be a non-empty uint8 array (N, H, W, 3); got "
                f"{getattr(x, 'dtype', type(x).__name__)} {getattr(x, 'shape', None)}"
            )
        if self.labels is not None:
            labels = np.asarray(self.labels)
            if labels.shape != (len(x),) or not np.issubdtype(labels.dtype, np.integer):
                raise DataFormatError(
                    f"CalibrationData.labels must be {len(x)} integer class indices; got {labels.dtype} {labels.shape}"
                )
            object.__setattr__(self, "labels", labels.astype(np.int64))
        for name in ("mean", "std"):
            value = getattr(self, name)
            try:
                stats = tuple(float(v) for v in value)
            except (TypeError, ValueError):
                stats = ()
            if len(stats) != 3 or (name == "std" and min(stats) <= 0):
                raise ConfigError(
                    f"CalibrationData.{name} must be three numbers{' > 0' if name == 'std' else ''}, "
                    f"got {value!r}; pass the model's normalisation (PretrainedModel.{name})"
                )
            object.__setattr__(self, name, stats)

    @classmethod
    def from_dataset(
        cls,
        dataset: object,
        *,
        mean: Sequence[float],
        std: Sequence[float],
        n: int | None = None,
        seed: int = 0,
        precision: str = "fp32",
    ) -> CalibrationData:
        """Draws ``n`` class-balanced images of a dataset, shuffled and interleaved by class.

        Every prefix of the result is class-balanced (see :func:`~moo_compress.data.balanced_order`),
        so consumers that read the first ``m`` images see every class about ``m / classes`` times,
        whatever ``n`` is; for one seed a larger ``n`` extends a smaller one.

        Args:
            dataset: Anything with ``images`` (uint8 NHWC) and ``labels``, e.g. an ``ArrayDataset``
                of the training split.
            mean: Normalisation mean.
            std: Normalisation std.
            n: Number of images (all when None, still in the interleaved order).
            seed: Seed of the choice and order.
            precision: See the class attributes.

        Raises:
            ConfigError: if ``n`` is smaller than the number of classes or larger than the dataset.
        """
        images, labels = np.asarray(dataset.images), np.asarray(dataset.labels)  # type: ignore[attr-defined]
        try:
            index = balanced_order(labels, len(labels) if n is None else n, seed=seed)
        except ConfigError as exc:
            raise ConfigError(f"calibration images: {exc}") from None
        images = np.ascontiguousarray(images[index])
        return cls(images, tuple(mean), tuple(std), labels[index], precision)  # type: ignore[arg-type]

    def check_balance(self, n: int, *, purpose: str) -> None:
        """Logs a warning when the first ``n`` images (what ``purpose`` reads) miss a class or are skewed.

        Only labelled data can be checked; :meth:`from_dataset` always passes.
        """
        if self.labels is None:
            return
        classes = np.unique(self.labels)
        seen = np.bincount(np.searchsorted(classes, self.labels[:n]), minlength=classes.size)
        if n < classes.size:
            _log.warning("%s reads %d calibration images, fewer than the %d classes: %d classes go unseen",
                         purpose, n, classes.size, int((seen == 0).sum()))
        elif seen.min() == 0 or seen.max() > 2 * max(1, seen.min()) + 1:
            _log.warning("%s reads the first %d calibration images, whose classes are skewed (%d to %d per "
                         "class); build the data with CalibrationData.from_dataset for a balanced order",
                         purpose, n, int(seen.min()), int(seen.max()))

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def fingerprint(self) -> str:
        """SHA-256 hex digest of the images, labels and normalisation (a cache key for results)."""
        digest = hashlib.sha256(np.ascontiguousarray(self.images).data)
        if self.labels is not None:
            digest.update(np.ascontiguousarray(self.labels).data)
        digest.update(repr((self.mean, self.std)).encode())
        if self.precision != "fp32":  # fp32 fingerprints stay as they were
            digest.update(self.precision.encode())
        return digest.hexdigest()

    def autocast(self, device: torch.device | str) -> contextlib.AbstractContextManager[None]:
        """bf16 autocast on ``device`` when ``precision`` is ``bf16``, else a no-op context."""
        device_type = torch.device(device).type
        return torch.autocast(device_type, dtype=torch.bfloat16, enabled=self.precision == "bf16")

    def tensor(self, index: slice | np.ndarray, device: torch.device | str = "cpu",
               augment: Callable[[torch.Tensor], torch.Tensor] | None = None) -> torch.Tensor:
        """Normalised float32 NCHW batch (channels-last memory) of the images at ``index``; ``augment``, if
        given, maps each image's uint8 CHW tensor to its augmented form first (e.g. torchvision's AugMix)."""
        x = torch.from_numpy(np.array(self.images[index], dtype=np.uint8, order="C"))
        if augment is not None:
            x = torch.stack([augment(image.permute(2, 0, 1)).permute(1, 2, 0) for image in x])
        x = x.to(device)
        scale = torch.tensor([1.0 / (255.0 * s) for s in self.std], device=device).view(1, 3, 1, 1)
        shift = torch.tensor([-m / s for m, s in zip(self.mean, self.std, strict=True)], device=device).view(1, 3, 1, 1)
        return x.permute(0, 3, 1, 2).float().mul_(scale).add_(shift)

    def batches(
        self, batch_size: int, *, device: torch.device | str = "cpu", limit: int | None = None
    ) -> Iterator[torch.Tensor]:
        """Normalised batches of the first ``limit`` images (all when None), in order."""
        stop = len(self) if limit is None else min(limit, len(self))
        for start in range(0, stop, batch_size):
            yield self.tensor(slice(start, min(start + batch_size, stop)), device)
