"""Latency of inference calls: PyTorch models and ONNX Runtime sessions alike, timed as zero-argument calls.

>>> x = calibration.tensor(slice(0, 64))
>>> compare_latency({"fp32": lambda: model(x), "onnx int8": lambda: onnx_model(images[:64])})

Deployed latency (:func:`measure_deployed`) times an exported ONNX file against a reference file in
alternation, so that load from other processes on a shared machine hits both alike, and reports the
median, the spread (interquartile range) of the repeated runs and the median per-round speed-up; the
machine (:func:`hardware`) and runtime are recorded with it. :func:`graph_structure` hashes what
decides an ONNX graph's speed (operators, attributes, tensor shapes and types; not the weight values),
so plans that deploy to the same structure are measured once.
"""

from __future__ import annotations

import hashlib
import os
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

__all__ = ["measure_latency", "compare_latency", "time_calls", "DeployedLatency", "measure_paired", "measure_deployed",
           "hardware",
           "onnx_runtime_name", "graph_structure"]


def measure_latency(call: Callable[[], object], *, warmup: int = 2, repeats: int = 10) -> float:
    """Median seconds of one ``call()`` under ``torch.inference_mode`` (after ``warmup`` calls)."""
    return float(np.median(time_calls({"call": call}, rounds=repeats, warmup=warmup)["call"]))


def time_calls(calls: dict[str, Callable[[], object]], *, rounds: int = 15, warmup: int = 2) -> dict[str, np.ndarray]:
    """Seconds of every call in each of ``rounds`` rounds.

    The calls alternate within a round (after ``warmup`` rounds).
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
    return {name: np.asarray(t) for name, t in times.items()}


def compare_latency(
    calls: dict[str, Callable[[], object]], *, rounds: int = 15, warmup: int = 2
) -> dict[str, tuple[float, float]]:
    """Times several calls in alternation, so that load from other processes hits them alike.

    Returns:
        Name -> (median seconds per call, median over rounds of the first call's time divided by
        this call's time, i.e. its speed-up over the first).
    """
    times = time_calls(calls, rounds=rounds, warmup=warmup)
    first = times[next(iter(calls))]
    return {name: (float(np.median(t)), float(np.median(first / t))) for name, t in times.items()}


def hardware() -> str:
    """The machine latency is measured on: CPU model, logical cores, architecture (e.g. for cache keys)."""
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} logical cores, {platform.machine()}"


def onnx_runtime_name(threads: int) -> str:
    """``onnxruntime <version> CPUExecutionProvider, <threads> thread(s)``."""
    import onnxruntime

    return f"onnxruntime {onnxruntime.__version__} CPUExecutionProvider, {threads} thread(s)"


@dataclass(frozen=True)
class DeployedLatency:
    """One measured latency of a deployed model, with its reference measured in the same rounds.

    Attributes:
        ms: Median milliseconds of one batch-1 run.
        low_ms: 25th percentile of the batch-1 runs (the spread is ``[low_ms, high_ms]``).
        high_ms: 75th percentile of the batch-1 runs.
        speedup: Median over rounds of the reference's batch-1 time divided by this model's (1.0: as fast).
            Paired within each round, so load that changes between rounds cancels.
        speedup_low: 25th percentile of the per-round speed-ups (the spread is ``[speedup_low, speedup_high]``;
            ``speedup_low > 1``: faster in three rounds of four, beyond the spread of repeated runs).
        speedup_high: 75th percentile of the per-round speed-ups.
        reference_ms: The reference's median batch-1 milliseconds in the same rounds.
        batch_ms: Median milliseconds of one run of ``batch_size`` images, or None when not measured.
        batch_speedup: The batch runs' median per-round speed-up over the reference, or None.
        batch_size: Images per run of the larger batch.
        rounds: Timed runs at batch 1 (after warm-up); the larger batch gets a tenth as many, at least 3.
        runtime: The runtime and its threads (:func:`onnx_runtime_name`).
        hardware: The machine (:func:`hardware`).
    """

    ms: float
    low_ms: float
    high_ms: float
    speedup: float
    speedup_low: float
    speedup_high: float
    reference_ms: float
    batch_ms: float | None
    batch_speedup: float | None
    batch_size: int
    rounds: int
    runtime: str
    hardware: str

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready fields."""
        return asdict(self)


def _ms(seconds: np.ndarray) -> float:
    return round(1000 * float(np.median(seconds)), 4)


def measure_paired(model: Callable[[Any], object], reference: Callable[[Any], object], images: Any, *,
                   rounds: int = 100, batch_size: int = 64, warmup: int = 5, runtime: str = "") -> DeployedLatency:
    """Median batch-1 (and ``batch_size``) latency of ``model(batch)`` in alternation with ``reference(batch)``.

    ``images`` holds at least ``batch_size`` inputs in whatever form the two calls take (uint8 arrays for
    ONNX sessions, tensors for PyTorch modules); ``batch_size`` 0 or 1 skips the larger batch.
    """
    one = images[:1]
    single = time_calls({"reference": lambda: reference(one), "model": lambda: model(one)}, rounds=rounds,
                        warmup=warmup)
    batch_ms = batch_speedup = None
    if batch_size > 1:
        many = images[:batch_size]
        batch = time_calls({"reference": lambda: reference(many), "model": lambda: model(many)},
                           rounds=max(3, rounds // 10), warmup=1)
        batch_ms = _ms(batch["model"])
        batch_speedup = round(float(np.median(batch["reference"] / batch["model"])), 4)
    low, high = np.percentile(single["model"], [25, 75])
    ratios = single["reference"] / single["model"]
    ratio_low, ratio_high = np.percentile(ratios, [25, 75])
    return DeployedLatency(ms=_ms(single["model"]), low_ms=round(1000 * float(low), 4),
                           high_ms=round(1000 * float(high), 4), speedup=round(float(np.median(ratios)), 4),
                           speedup_low=round(float(ratio_low), 4), speedup_high=round(float(ratio_high), 4),
                           reference_ms=_ms(single["reference"]), batch_ms=batch_ms, batch_speedup=batch_speedup,
                           batch_size=int(batch_size), rounds=int(rounds), runtime=runtime, hardware=hardware())


def measure_deployed(path: str | os.PathLike[str], reference: str | os.PathLike[str], *, threads: int = 1,
                     rounds: int = 100, batch_size: int = 64, warmup: int = 5,
                     images: np.ndarray | None = None) -> DeployedLatency:
    """Median batch-1 (and ``batch_size``) latency of an exported ONNX file, in alternation with ``reference``
    (:func:`measure_paired`).

    Both run in ONNX Runtime sessions on the CPU with ``threads`` intra-op threads, on uint8 images of
    the files' input size (``images``, else a fixed random batch: latency does not depend on the pixel values).
    """
    from moo_compress.deploy.onnx_model import OnnxModel

    model, ref = OnnxModel(path, threads=threads), OnnxModel(reference, threads=threads)
    if images is None:
        _, height, width = model.input_size or (3, 32, 32)
        n = max(1, batch_size)
        images = np.random.default_rng(0).integers(0, 256, size=(n, height, width, 3), dtype=np.uint8)
    images = np.ascontiguousarray(images)  # its leading slices then are too: nothing is copied inside the timing
    return measure_paired(model, ref, images, rounds=rounds, batch_size=batch_size, warmup=warmup,
                          runtime=onnx_runtime_name(threads))


def graph_structure(model: Any) -> str:
    """Hash of what decides an ONNX graph's speed: each node's operator, attributes and the shapes and
    types of its constant inputs (weights), in graph order; weight *values* do not count.

    ``model``: an ``onnx.ModelProto`` or a path to one.
    """
    import onnx

    if not isinstance(model, onnx.ModelProto):
        model = onnx.load(os.fspath(model))
    constants = {t.name: (t.data_type, tuple(t.dims)) for t in model.graph.initializer}
    digest = hashlib.sha256()
    for node in model.graph.node:
        attributes = sorted((a.name, onnx.helper.get_attribute_value(a)) for a in node.attribute
                            if a.type != onnx.AttributeProto.TENSOR)
        tensors = sorted((a.name, a.t.data_type, tuple(a.t.dims)) for a in node.attribute
                         if a.type == onnx.AttributeProto.TENSOR)
        inputs = [constants.get(name, "-") for name in node.input]
        digest.update(repr((node.op_type, node.domain, attributes, tensors, inputs)).encode())
    return digest.hexdigest()[:16]

