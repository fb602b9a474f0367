"""Benchmark of the compression engine (issue 4) on VGG-19; writes the ``compress`` section of RESULTS.md.

1. Time to compress VGG-19 with 50% sparsity + 16 clusters + 8 bits, and the 1-D k-means against a
   naive n x k k-means (distance matrix + argmin per Lloyd iteration) from the same initial centroids
   for the same number of iterations, measured in the same run.
2. Analytic compression ratio (storage model) against the measured one (packed file, and gzip'ed as
   the seed study measured it) for a grid of plans.
3. Done-means: clean accuracy of the compressed VGG-19 on the CIFAR-10 test set, and the int8 CPU
   path's latency and accuracy: the plan with 8-bit activations exported as an int8 QDQ ONNX file and
   run by ONNX Runtime (when the data and weights are available).

Usage:
    MOO_COMPRESS_DATA=../shared/data MOO_COMPRESS_WEIGHTS=../shared/weights python benchmarks/bench_compress.py
"""

from __future__ import annotations

import argparse
import copy
import gzip
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import write_section  # noqa: E402

from moo_compress.compress import (  # noqa: E402
    CalibrationData,
    ClusterConfig,
    CompressionPlan,
    PruneConfig,
    QuantizeConfig,
    RecoveryConfig,
    compress,
    compression_state,
    export_onnx,
    kmeans_1d,
    pack_compressed,
    size_report,
    state_dict_bytes,
)
from moo_compress.compress.cluster import init_kmeanspp  # noqa: E402
from moo_compress.errors import MooCompressError  # noqa: E402
from moo_compress.evaluation import OnnxModel, compare_latency, runtime_kernels  # noqa: E402
from moo_compress.models import create_model, load_pretrained  # noqa: E402

MAIN = CompressionPlan(prune=PruneConfig(0.5), cluster=ClusterConfig(16), quantize=QuantizeConfig(8))
GRID = [
    CompressionPlan(),
    CompressionPlan(prune=PruneConfig(0.5)),
    CompressionPlan(prune=PruneConfig(0.8)),
    CompressionPlan(prune=PruneConfig(0.5, structured=True)),
    CompressionPlan(cluster=ClusterConfig(16)),
    CompressionPlan(cluster=ClusterConfig(4)),
    CompressionPlan(quantize=QuantizeConfig(8)),
    CompressionPlan(quantize=QuantizeConfig(4, symmetric=False)),
    CompressionPlan(prune=PruneConfig(0.5), cluster=ClusterConfig(16)),
    CompressionPlan(prune=PruneConfig(0.5), quantize=QuantizeConfig(8)),
    CompressionPlan(cluster=ClusterConfig(16), quantize=QuantizeConfig(8)),
    MAIN,
    CompressionPlan(prune=PruneConfig(0.8), cluster=ClusterConfig(8), quantize=QuantizeConfig(4)),
    CompressionPlan(prune=PruneConfig(0.9, scope="layer"), cluster=ClusterConfig(4), quantize=QuantizeConfig(4)),
]


def naive_kmeans(
    values: np.ndarray, centroids: np.ndarray, iterations: int, chunk: int = 1 << 20
) -> tuple[np.ndarray, np.ndarray]:
    """Textbook Lloyd: an n x k distance matrix and argmin per iteration (chunked to bound memory)."""
    x = torch.from_numpy(values)
    c = torch.from_numpy(centroids.astype(np.float32))
    labels = torch.empty(x.numel(), dtype=torch.int64)
    for step in range(iterations + 1):
        for start in range(0, x.numel(), chunk):
            part = x[start : start + chunk]
            labels[start : start + chunk] = (part[:, None] - c[None, :]).abs().argmin(dim=1)
        counts = torch.bincount(labels, minlength=c.numel()).double()
        sums = torch.bincount(labels, weights=x.double(), minlength=c.numel())
        c = torch.where(counts > 0, sums / counts.clamp(min=1), c.double()).float()
        if step == iterations:
            break
    return c.numpy(), labels.numpy()


def layer_values(model: torch.nn.Module) -> list[np.ndarray]:
    """The non-zero weights of every layer after 50% global pruning (what the main plan clusters)."""
    pruned = compress(model, CompressionPlan(prune=PruneConfig(0.5)))
    return [s.values[s.values != 0].astype(np.float32) for s in compression_state(pruned).layers.values()]


class _Autocast(torch.nn.Module):
    """Runs a model under CPU bf16 autocast (the evaluator's ``precision="bf16"``)."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return self.model(x)


def timed(fn, repeats: int) -> tuple[float, object]:  # noqa: ANN001
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def speed_section(model: torch.nn.Module, repeats: int, naive_iterations: int) -> str:
    compress(model, MAIN)  # warm-up (imports, allocator)
    t_compress, small = timed(lambda: compress(model, MAIN), repeats)
    n_weights = sum(s.numel for s in compression_state(small).layers.values())
    values = layer_values(model)
    rngs = lambda: [np.random.default_rng([0, i]) for i in range(len(values))]  # noqa: E731

    # converged fast k-means (as compress runs it)
    t_fast, results = timed(lambda: [kmeans_1d(v, 16, rng=r) for v, r in zip(values, rngs(), strict=True)], repeats)
    iterations = [r.iterations for r in results]
    # equal work: both methods run naive_iterations Lloyd updates from the same k-means++ centroids
    t_fast_fixed, fixed = timed(
        lambda: [
            kmeans_1d(v, 16, rng=r, tol=0, max_iter=naive_iterations) for v, r in zip(values, rngs(), strict=True)
        ],
        repeats,
    )
    inits = [init_kmeanspp(np.sort(v), 16, r) for v, r in zip(values, rngs(), strict=True)]
    start = time.perf_counter()
    naive = [naive_kmeans(v, c, naive_iterations) for v, c in zip(values, inits, strict=True)]
    t_naive = time.perf_counter() - start
    per_iteration = t_naive / (naive_iterations + 1)
    worst = max(
        float(np.max(np.abs(f.centroids - n[0]) / (np.abs(n[0]) + 1e-12)))
        for f, n in zip(fixed, naive, strict=True)
        if f.centroids.size == n[0].size
    )
    agree = sum(int(np.sum(f.labels == n[1])) for f, n in zip(fixed, naive, strict=True)) / sum(v.size for v in values)
    projected = per_iteration * (statistics.mean(iterations) + 1)
    verdict = "meets" if t_compress <= 2.0 else "misses"
    return f"""### Speed: VGG-19, 50% sparsity + 16 clusters + 8 bits

| what | seconds (median of {repeats}) |
|---|---|
| `compress(vgg19, P50-C16-Q8)` end to end ({n_weights / 1e6:.1f}M weights, {len(values)} layers) \
| **{t_compress:.2f}** |
| 1-D k-means of all layers, converged (mean {statistics.mean(iterations):.0f} Lloyd updates per layer, \
max {max(iterations)}) | {t_fast:.2f} |
| 1-D k-means of all layers, {naive_iterations} updates from k-means++ | {t_fast_fixed:.2f} |
| naive n x k k-means of all layers, {naive_iterations} updates from the same centroids (one run) | {t_naive:.2f} |

- Same work, {naive_iterations} Lloyd updates: the sorted/prefix-sum k-means is **{t_naive / t_fast_fixed:.0f}x** faster
  than the naive one; both give the same centroids (largest relative difference {worst:.1e}) and
  {100 * agree:.4f}% identical assignments (any others sit on a float32 midpoint).
- A naive k-means run to the same convergence would need about {projected:.0f} s
  ({per_iteration:.2f} s per iteration x the fast method's mean iteration count + 1), i.e.
  **{projected / t_fast:.0f}x** the fast method's converged time.
- Target (compress VGG-19 P50-C16-Q8 in at most 2 s on this machine): **{verdict}** it ({t_compress:.2f} s).
"""


def ratio_section(model: torch.nn.Module) -> str:
    fp32 = state_dict_bytes(model)
    fp32_gzip = len(gzip.compress(fp32, compresslevel=9, mtime=0))
    rows = []
    for plan in GRID:
        start = time.perf_counter()
        small = compress(model, plan)
        seconds = time.perf_counter() - start
        report = size_report(small)
        packed = pack_compressed(small, arch="vgg19")
        packed_gzip = len(gzip.compress(packed, compresslevel=9, mtime=0))
        overhead = len(packed) - report.compressed_bytes
        rows.append(
            f"| {plan.label()} | {seconds:.2f} | {report.compression_ratio:.2f}x | {len(packed) / 1e6:.2f} | "
            f"{len(fp32) / len(packed):.2f}x | {overhead / 1e3:.1f} | {packed_gzip / 1e6:.2f} | "
            f"{fp32_gzip / packed_gzip:.2f}x |"
        )
    return (
        f"""### Compression ratio: analytic against measured, VGG-19

fp32 `state_dict` (`torch.save`): {len(fp32) / 1e6:.2f} MB, gzip -9: {fp32_gzip / 1e6:.2f} MB.
Analytic = dense fp32 bits / compressed bits of the storage model; packed = fp32 `state_dict` bytes /
packed file bytes; overhead = packed bytes - analytic bytes (JSON header + per-blob byte padding);
gzip = gzip(fp32 `state_dict`) / gzip(packed file), the seed study's measure.

| plan | compress s | analytic | packed MB | packed ratio | overhead kB | gzip MB | gzip ratio |
|---|---|---|---|---|---|---|---|
"""
        + "\n".join(rows)
        + """

Quantizing the centroids of a clustered layer only shrinks its codebook (k values at b instead of 32
bits; under 1 kB over all of VGG-19's layers for k = 16), so C16 and C16-Q8 have practically the same size. \
Analytic and packed ratios agree to the header; gzip adds
little on top of the packed layouts except for dense quantized codes (Q4), whose values are far from
uniformly distributed.
"""
    )


def accuracy_section(pretrained, data_root: str | None, calibration_n: int) -> str:  # noqa: ANN001
    from moo_compress.data import load_dataset
    from moo_compress.evaluation import Evaluator

    test = load_dataset("cifar10", "test", data_root=data_root)
    train = load_dataset("cifar10", "train", data_root=data_root)
    calibration = CalibrationData.from_dataset(train, mean=pretrained.mean, std=pretrained.std, n=calibration_n, seed=0)

    def accuracy(model: torch.nn.Module, precision: str) -> float:
        return Evaluator(model, mean=pretrained.mean, std=pretrained.std, precision=precision).accuracy(
            test.images, test.labels
        )

    fp32 = len(state_dict_bytes(pretrained.model))
    checkpoint = pretrained.weights_path.stat().st_size
    rows = []
    models = {}
    plans = [
        ("original", None),
        ("P50-C16-Q8", MAIN),
        (
            f"P50-C16-Q8 + BN re-estimation ({calibration_n} train images)",
            CompressionPlan(
                prune=MAIN.prune,
                cluster=MAIN.cluster,
                quantize=MAIN.quantize,
                recovery=RecoveryConfig(bn_images=calibration_n),
            ),
        ),
    ]
    for label, plan in plans:
        model = pretrained.model if plan is None else compress(pretrained.model, plan, calibration)
        models[label] = model
        packed = len(pack_compressed(model, arch="vgg19")) if plan is not None else fp32
        bf16 = accuracy(model, "bf16")
        f32 = accuracy(model, "fp32")
        rows.append(
            f"| {label} | {100 * f32:.2f}% | {100 * bf16:.2f}% | {packed / 1e6:.2f} MB | {fp32 / packed:.2f}x | "
            f"{checkpoint / packed:.2f}x |"
        )
    return (
        f"""### Done-means: VGG-19 (`{pretrained.weights_path.name}`) on the CIFAR-10 JPEG test set (10,000 images)

Sizes are measured bytes: fp32 `state_dict` {fp32 / 1e6:.2f} MB, checkpoint file {checkpoint / 1e6:.2f} MB.

| model | top-1 fp32 | top-1 bf16 | packed file | vs fp32 state_dict | vs checkpoint file |
|---|---|---|---|---|---|
"""
        + "\n".join(rows)
        + "\n"
    )


def int8_section(pretrained, data_root: str | None, rounds: int, threads: int) -> str:  # noqa: ANN001
    import tempfile

    from moo_compress.data import load_dataset

    test = load_dataset("cifar10", "test", data_root=data_root)
    train = load_dataset("cifar10", "train", data_root=data_root)
    calibration = CalibrationData.from_dataset(train, mean=pretrained.mean, std=pretrained.std, n=512, seed=0)
    plan = CompressionPlan(prune=MAIN.prune, cluster=MAIN.cluster, quantize=QuantizeConfig(8, activation_bits=8))
    small = compress(pretrained.model, plan, calibration)
    kw = dict(mean=pretrained.mean, std=pretrained.std, input_size=pretrained.input_size or (3, 32, 32))
    with tempfile.TemporaryDirectory() as folder:  # a session keeps its graph in memory
        int8_file = export_onnx(small, None, Path(folder) / "int8.onnx", calibration=calibration, **kw)
        fp32_file = export_onnx(pretrained.model, None, Path(folder) / "fp32.onnx", **kw)
        int8, fp32 = OnnxModel(int8_file.path, threads=threads), OnnxModel(fp32_file.path, threads=threads)
        kernels = runtime_kernels(int8_file.path)
    full = CalibrationData(test.images, pretrained.mean, pretrained.std)
    with torch.inference_mode():
        reference = torch.cat([small(full.tensor(slice(i, i + 500))).argmax(1) for i in range(0, len(test), 500)])
    predictions = int8.predict(test.images)
    accuracy = float((predictions == test.labels).mean())
    fake_accuracy = float((reference.numpy() == test.labels).mean())
    same = float((predictions == reference.numpy()).mean())
    channels_last = copy.deepcopy(pretrained.model).to(memory_format=torch.channels_last)
    bf16 = _Autocast(channels_last)
    rows = []
    default_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        for batch in (64, 1):
            x = calibration.tensor(slice(0, batch))
            images = calibration.images[:batch]
            calls = {"PyTorch fp32": lambda x=x: pretrained.model(x),
                     "PyTorch fp32 channels-last": lambda x=x: channels_last(x),
                     "PyTorch bf16 autocast": lambda x=x: bf16(x),
                     "ONNX Runtime fp32": lambda images=images: fp32(images),
                     "ONNX Runtime int8 QDQ": lambda images=images: int8(images)}
            result = compare_latency(calls, rounds=rounds if batch > 1 else 3 * rounds)
            rows += [f"| {batch} | {name} | {1e3 * t:.1f} | {speedup:.2f}x |" for name, (t, speedup) in result.items()]
    finally:
        torch.set_num_threads(default_threads)
    return (
        f"""### Real int8 CPU path, VGG-19 {plan.label()}, ONNX Runtime

`export_onnx` (QDQ on the plan's own weight and input grids, output grids from 512 calibration images) run
by ONNX Runtime's CPU provider ({kernels['QLinearConv']} `QLinearConv`, {kernels['QGemm']} `QGemm` kernels):
top-1 **{100 * accuracy:.2f}%** on the 10,000 test images, against {100 * fake_accuracy:.2f}% for the same
plan run by PyTorch in fp32 with fake-quantized weights and inputs ({100 * same:.2f}% of the predictions
agree). Latency: calls timed in alternation ({rounds} rounds for batch 64, {3 * rounds} for batch 1,
medians; speedup = median over rounds of the PyTorch fp32 time / the call's time), {threads} thread(s):
while other processes share the 2 cores, 2-thread timings are dominated by OpenMP oversubscription.

| batch | model | ms per call | speedup vs PyTorch fp32 |
|---|---|---|---|
"""
        + "\n".join(rows)
        + "\n"
    )


PARTS = ("speed", "ratio", "accuracy", "int8")


def main(argv: list[str] | None = None) -> int:
    """Runs the benchmark parts and writes each one's section of RESULTS.md."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated subset of {', '.join(PARTS)}")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--naive-iterations", type=int, default=10)
    parser.add_argument("--data-root", help="CIFAR-10 folder (default: found under $MOO_COMPRESS_DATA)")
    parser.add_argument("--weights-dir", help="folder of checkpoints (default: $MOO_COMPRESS_WEIGHTS)")
    parser.add_argument("--calibration", type=int, default=1000, help="training images for BN re-estimation")
    parser.add_argument("--rounds", type=int, default=15, help="latency rounds of the int8 part")
    parser.add_argument(
        "--latency-threads", type=int, default=1, help="torch threads while timing (speed part, int8 latency)"
    )
    args = parser.parse_args(argv)
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = [p for p in parts if p not in PARTS]
    if unknown:
        parser.error(f"unknown part(s) {unknown}; choose from {', '.join(PARTS)}")

    try:
        pretrained = load_pretrained("vgg19", "cifar10", weights_dir=args.weights_dir, download=False)
        model, source = pretrained.model, f"pretrained `{pretrained.weights_path.name}`"
    except MooCompressError:
        pretrained = None
        torch.manual_seed(0)
        model, source = create_model("vgg19").eval(), "randomly initialised (no checkpoint found)"
    intro = f"VGG-19 weights: {source}.\n\n"

    def load() -> str:  # other processes share the 2 cores: say how busy the machine was
        return f"load average (1 min) {os.getloadavg()[0]:.1f} at the end of this part.\n\n"

    if "speed" in parts:
        default_threads = torch.get_num_threads()
        torch.set_num_threads(args.latency_threads)
        try:
            body = f"Timed with {args.latency_threads} torch thread(s) (see the int8 section for why).\n\n"
            body += speed_section(model, args.repeats, args.naive_iterations)
        finally:
            torch.set_num_threads(default_threads)
        write_section("compress-speed", "Compression engine (issue 4): speed", intro + load() + body)
    if "ratio" in parts:
        write_section("compress-ratio", "Compression engine (issue 4): compression ratio", intro + ratio_section(model))
    needs_data = [p for p in parts if p in ("accuracy", "int8")]
    if needs_data and pretrained is None:
        print(f"skipped {needs_data}: no VGG-19 checkpoint found (set $MOO_COMPRESS_WEIGHTS)")
        return 0
    try:
        if "accuracy" in parts:
            write_section(
                "compress-accuracy",
                "Compression engine (issue 4): done-means",
                accuracy_section(pretrained, args.data_root, args.calibration),
            )
        if "int8" in parts:
            body = int8_section(pretrained, args.data_root, args.rounds, args.latency_threads)
            write_section("compress-int8", "Compression engine (issue 4): int8 CPU path", load() + body)
    except MooCompressError as exc:
        print(f"skipped {needs_data}: {exc}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
