"""Device and precision handling shared by evaluation and training."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from moo_compress.errors import ConfigError

__all__ = ["PRECISIONS", "resolve_device", "check_precision", "autocast"]

PRECISIONS = ("fp32", "bf16")


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """``None``/``"auto"`` -> CUDA when present, else CPU; ``"cuda"`` without a GPU is an error."""
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise ConfigError(f"unknown device {device!r}; use cpu, cuda, cuda:N or auto") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda was asked for but no CUDA GPU is available; use --device cpu")
    if dev.type not in ("cpu", "cuda"):
        raise ConfigError(f"device type {dev.type!r} is not supported; use cpu or cuda")
    return dev


def check_precision(precision: str) -> str:
    """Returns ``precision`` if valid (``fp32`` or ``bf16``), else raises ConfigError."""
    if precision not in PRECISIONS:
        raise ConfigError(f"unknown precision {precision!r}; use one of {', '.join(PRECISIONS)}")
    return precision


@contextlib.contextmanager
def autocast(device: torch.device, precision: str) -> Iterator[None]:
    """bf16 autocast on ``device`` when ``precision == "bf16"``, else a no-op."""
    if check_precision(precision) == "bf16":
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16):
            yield
    else:
        yield
