"""What each compression technique does to deployed latency: ONNX Runtime on the CPU; writes the ``latency`` section.

For every architecture, the pretrained model is compressed with each plan below (with the options of the
shipped deploy spaces, ``search_spaces/deploy_cifar_resnet.yaml`` and ``deploy_vgg19.yaml``), exported
with :func:`~moo_compress.compress.export_onnx`, and all of the architecture's files are timed in one
run, in alternation (``time_calls``), so that load from other processes hits them alike. Each plan's
top-1 accuracy on 2,000 stratified test images is measured in ONNX Runtime and in PyTorch.

Usage:
    MOO_COMPRESS_DATA=../shared/data MOO_COMPRESS_WEIGHTS=../shared/weights python benchmarks/bench_latency.py
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import numpy as np

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
    export_onnx,
)
from moo_compress.data import load_dataset, stratified_indices  # noqa: E402
from moo_compress.evaluation import Evaluator, OnnxModel, runtime_kernels  # noqa: E402
from moo_compress.evaluation.latency import graph_structure, hardware, onnx_runtime_name, time_calls  # noqa: E402
from moo_compress.models import load_pretrained  # noqa: E402

_log = logging.getLogger("bench_latency")

# The deploy spaces' fixed options: symmetric per-channel grids, BN re-estimation on 512 training
# images, and (VGG only) an uncompressed classifier.
QUANTIZE = {"per_channel": True, "symmetric": True}
ARCH_OPTIONS = {"resnet20": {}, "vgg19": {"exclude_classifier": True}}


def plans(arch: str) -> dict[str, CompressionPlan]:
    """The plans compared for ``arch``, by display name; the first is the baseline."""
    common = {"recovery": RecoveryConfig(bn_images=512), **ARCH_OPTIONS.get(arch, {})}
    structured = PruneConfig(0.5, scope="layer", structured=True, removable_only=True)
    return {
        "baseline": CompressionPlan(),
        "unstructured P50": CompressionPlan(prune=PruneConfig(0.5), **common),
        "structured P50": CompressionPlan(prune=structured, **common),
        "C16": CompressionPlan(cluster=ClusterConfig(16), **common),
        "Q8 weights only": CompressionPlan(quantize=QuantizeConfig(8, **QUANTIZE), **common),
        "W8A8": CompressionPlan(quantize=QuantizeConfig(8, activation_bits=8, **QUANTIZE), **common),
    }


def _stats(seconds: np.ndarray, base: np.ndarray) -> dict[str, float]:
    low, median, high = 1e3 * np.percentile(seconds, [25, 50, 75])
    base_low, base_high = np.percentile(base, [25, 75])
    faster = np.percentile(seconds, 75) < base_low
    slower = np.percentile(seconds, 25) > base_high
    return {"ms": median, "low": low, "high": high, "speedup": float(np.median(base / seconds)),
            "verdict": "**faster**" if faster else "slower" if slower else "no"}


def bench_arch(arch: str, *, train, test, weights_dir: str | None, threads: int, rounds: int,  # noqa: ANN001
               batch_rounds: int, folder: Path) -> tuple[str, dict[str, dict]]:
    """Compresses, exports and times every plan of ``arch``; returns its markdown table and the rows."""
    pre = load_pretrained(arch, "cifar10", weights_dir=weights_dir, download=False)
    calib = CalibrationData.from_dataset(train, mean=pre.mean, std=pre.std, n=512, seed=0)
    index = stratified_indices(test.labels, 200, seed=0)
    images, labels = test.images[index], test.labels[index]
    rows: dict[str, dict] = {}
    models: dict[str, OnnxModel] = {}
    for i, (name, plan) in enumerate(plans(arch).items()):
        start = time.perf_counter()
        try:
            small = compress(pre.model, plan, calib)
            exported = export_onnx(small, None, folder / f"{arch}-{i}.onnx", mean=pre.mean, std=pre.std,
                                   input_size=pre.input_size or (3, 32, 32), calibration=calib, arch=arch)
            models[name] = OnnxModel(exported.path, threads=threads)
            rows[name] = {
                "label": plan.label(), "kind": exported.kind, "removed": exported.removed_filters,
                "mb": exported.bytes / 1e6, "structure": graph_structure(exported.path),
                "kernels": ", ".join(f"{n} {op}" for op, n in sorted(runtime_kernels(exported.path).items())
                                     if "Conv" in op),
                "torch": Evaluator(small, mean=pre.mean, std=pre.std).accuracy(images, labels),
                "onnx": models[name].accuracy(images, labels),
            }
        except Exception as exc:  # noqa: BLE001 -- failures are data: record the plan as failed, go on
            _log.exception("%s %s failed", arch, name)
            rows[name] = {"label": plan.label(), "failed": f"{type(exc).__name__}: {exc}".splitlines()[0][:160]}
        rows[name]["seconds"] = time.perf_counter() - start
        _log.info("%s %s: %s (%.0f s)", arch, name, rows[name].get("failed", "exported"), rows[name]["seconds"])
    if "baseline" not in models:
        raise RuntimeError(f"{arch}: the baseline could not be exported, nothing to compare against")
    for batch, n_rounds in ((1, rounds), (64, batch_rounds)):
        x = np.ascontiguousarray(images[:batch])
        _log.info("%s: timing %d files at batch %d, %d rounds", arch, len(models), batch, n_rounds)
        times = time_calls({name: partial(model, x) for name, model in models.items()}, rounds=n_rounds, warmup=3)
        for name, seconds in times.items():
            rows[name][batch] = _stats(seconds, times["baseline"])
    base_structure = rows["baseline"]["structure"]
    lines = ["| plan | label | file | MB | removed filters | same graph as baseline | runtime conv kernels "
             "| top-1 ORT | top-1 PyTorch | b1 ms [IQR] | b1 speed-up | b1 measurably faster | b64 ms [IQR] "
             "| b64 speed-up | b64 measurably faster |",
             "|---|---|---|---:|---:|---|---|---:|---:|---:|---:|---|---:|---:|---|"]
    for name, row in rows.items():
        if "failed" in row:
            lines.append(f"| {name} | {row['label']} | **failed**: {row['failed']} |" + " |" * 12)
            continue
        cells = [name, row["label"], row["kind"], f"{row['mb']:.2f}", str(row["removed"]),
                 "yes" if row["structure"] == base_structure else "no", row["kernels"],
                 f"{100 * row['onnx']:.2f}%", f"{100 * row['torch']:.2f}%"]
        for batch in (1, 64):
            s = row[batch]
            cells += [f"{s['ms']:.2f} [{s['low']:.2f}-{s['high']:.2f}]", f"{s['speedup']:.2f}x",
                      "-" if name == "baseline" else s["verdict"]]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines), rows


def _named(rows: dict[str, dict], batch: int, word: str) -> str:
    """The plans whose verdict at this batch contains `word`, with their speed-ups, or "none"."""
    hits = [f"{name} ({rows[name][batch]['speedup']:.2f}x)" for name in rows
            if name != "baseline" and batch in rows[name] and word in rows[name][batch]["verdict"]]
    return ", ".join(hits) or "none"


def reading(results: dict[str, dict[str, dict]]) -> str:
    """One line per architecture and batch naming the plans measurably faster or slower than the baseline."""
    out = []
    for arch, rows in results.items():
        for batch in (1, 64):
            out.append(f"- {arch}, batch {batch}: measurably faster than the baseline: "
                       f"{_named(rows, batch, 'faster')}; measurably slower: {_named(rows, batch, 'slower')}.")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    """Runs the benchmark for every architecture and writes the ``latency`` section of RESULTS.md."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archs", nargs="+", default=["resnet20", "vgg19"], choices=sorted(ARCH_OPTIONS))
    parser.add_argument("--rounds", type=int, default=50, help="timed rounds at batch 1 (all files per round)")
    parser.add_argument("--batch-rounds", type=int, default=10, help="timed rounds at batch 64")
    parser.add_argument("--threads", type=int, default=1, help="ONNX Runtime intra-op threads")
    parser.add_argument("--data-root", help="CIFAR-10 folder (default: found under $MOO_COMPRESS_DATA)")
    parser.add_argument("--weights-dir", help="folder of checkpoints (default: $MOO_COMPRESS_WEIGHTS)")
    parser.add_argument("--out", default="latency", help="RESULTS.md section to write")
    args = parser.parse_args(argv)
    logging.basicConfig(format="%(asctime)s %(message)s")
    _log.setLevel(logging.INFO)  # progress of this script only, not the ONNX exporter's chatter

    start = time.perf_counter()
    train = load_dataset("cifar10", "train", data_root=args.data_root)
    test = load_dataset("cifar10", "test", data_root=args.data_root)
    tables, results = [], {}
    with tempfile.TemporaryDirectory() as folder:
        for arch in args.archs:
            table, results[arch] = bench_arch(arch, train=train, test=test, weights_dir=args.weights_dir,
                                              threads=args.threads, rounds=args.rounds,
                                              batch_rounds=args.batch_rounds, folder=Path(folder))
            tables.append(f"### {arch}\n\n{table}\n")
    minutes = (time.perf_counter() - start) / 60
    body = f"""Deployed machine: {hardware()}. Runtime: {onnx_runtime_name(args.threads)}. Load average (1 min) at the
end: {os.getloadavg()[0]:.1f}; whole run {minutes:.1f} min.

Each plan of the deploy spaces' options (symmetric per-channel grids, BN re-estimation on 512 training images;
VGG-19 keeps its classifier uncompressed) is compressed from the pretrained model and exported with
`export_onnx` (uint8 NHWC images in; `float`: dequantized float weights, `qdq`: int8 kernels). All files of
one architecture are timed in one run, in alternation: {args.rounds} rounds at batch 1, {args.batch_rounds} at
batch 64, after 3 warm-up rounds. ms: median per call [25th-75th percentile]; speed-up: median over rounds
of baseline time / plan time; measurably faster: the plan's 75th percentile is below the baseline's 25th
(outside the spread of repeated runs; "slower": its 25th is above the baseline's 75th). Top-1 on 2,000
stratified test images (200 per class, seed 0), in ONNX Runtime and for the compressed PyTorch model.
"Same graph as baseline": equal `graph_structure` hash (operators, attributes, weight shapes and types,
not weight values), i.e. the same work for the runtime.

{chr(10).join(tables)}
{reading(results)}

Reading: every weight-only plan (pruning, clustering, 8-bit weights) is exported as dense float
weights (ONNX has no sparse, codebook or sub-8-bit weight types), so it changes latency only where it
changes the graph. Where the graph is the baseline's ("same graph" yes), the runtime does the same work
and any difference is run-to-run noise. Unstructured pruning can leave whole filters at zero, which
`export_onnx` removes; the odd channel counts that result (not multiples of the CPU's blocked-layout
width) can push ONNX Runtime from its blocked (NCHWc) `Conv` kernels to generic `FusedConv` ones
(kernel column), which costs more than the removed filters save. Structured pruning of removable
filters narrows layers on purpose, and W8A8 runs int8 `QLinearConv` kernels: these are the plans that
can be faster; the table says by how much at batch 1 and 64, and at what accuracy.
"""
    write_section(args.out, "Deployed latency of each compression technique (ONNX Runtime, CPU)", body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
