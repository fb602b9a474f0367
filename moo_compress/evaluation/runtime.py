"""Device and precision handling shared by evaluation and training."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from moo_compress.errors import ConfigError

__all__ = ["PRECISIONS", "resolve_device", "check_precision", "resolve_precision", "autocast", "default_batch_size"]

PRECISIONS = ("fp32", "bf16")

CPU_IMAGES_PER_THREAD = 64
"""CPU batch size per torch thread: small enough for one thread's activations of a CIFAR CNN to stay
in its core's cache, large enough to amortise per-layer overhead. Measured on a 2-core machine: two
1-thread processes evaluating 8 ResNet-20 plans each took 22-23 s at 50 images per batch and 26-28 s
at 100 (larger batches spill to the shared cache and slow parallel workers down)."""

CUDA_BATCH_SIZE = 256
"""Starting GPU batch size; the evaluator halves it on an out-of-memory error."""


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


def _cpu_has_amx() -> bool:
    try:
        with open("/proc/cpuinfo") as f:
            return "amx_bf16" in f.read()
    except OSError:
        return False


def resolve_precision(precision: str, device: str | torch.device | None = None) -> str:
    """``fp32`` or ``bf16``; ``auto`` picks bf16 where it is faster than fp32: on CUDA devices that support
    it and on CPUs with AMX tiles (``amx_bf16``). Without AMX, bf16 autocast on CPU was measured slower
    than fp32 (VGG-19: 192 against 230 images/s on 2 AVX-512 cores; benchmarks/RESULTS.md, "evaluator"),
    with AMX about 2.8x faster.
    """
    if precision != "auto":
        return check_precision(precision)
    dev = resolve_device(device)
    if dev.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if _cpu_has_amx() else "fp32"


@contextlib.contextmanager
def autocast(device: torch.device, precision: str) -> Iterator[None]:
    """bf16 autocast on ``device`` when ``precision == "bf16"``, else a no-op."""
    if check_precision(precision) == "bf16":
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16):
            yield
    else:
        yield


def default_batch_size(device: torch.device) -> int:
    """Images per forward pass when none is given: 64 per torch thread on CPU, 256 on CUDA."""
    if device.type == "cuda":
        return CUDA_BATCH_SIZE
    return CPU_IMAGES_PER_THREAD * torch.get_num_threads()
