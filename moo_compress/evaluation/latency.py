"""Latency of inference calls: PyTorch models and ONNX Runtime sessions alike, timed as zero-argument calls.

>>> x = calibration.tensor(slice(0, 64))
>>> compare_latency({"fp32": lambda: model(x), "onnx int8": lambda: onnx_model(images[:64])})
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch

__all__ = ["measure_latency", "compare_latency"]


def measure_latency(call: Callable[[], object], *, warmup: int = 2, repeats: int = 10) -> float:
    """Median seconds of one ``call()`` under ``torch.inference_mode`` (after ``warmup`` calls)."""
    times = []
    with torch.inference_mode():
        for _ in range(warmup):
            call()
        for _ in range(repeats):
            start = time.perf_counter()
            call()
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def compare_latency(
    calls: dict[str, Callable[[], object]], *, rounds: int = 15, warmup: int = 2
) -> dict[str, tuple[float, float]]:
    """Times several calls in alternation, so that load from other processes hits them alike.

    Returns:
        Name -> (median seconds per call, median over rounds of the first call's time divided by
        this call's time, i.e. its speed-up over the first).
    """
    times: dict[str, list[float]] = {name: [] for name in calls}
    with torch.inference_mode():
        for _ in range(warmup):
            for call in calls.values():
                call()
        for _ in range(rounds):
            for name, call in calls.items():
                start = time.perf_counter()
                call()
                times[name].append(time.perf_counter() - start)
    first = times[next(iter(calls))]
    return {
        name: (statistics.median(t), statistics.median(a / b for a, b in zip(first, t, strict=True)))
        for name, t in times.items()
    }
