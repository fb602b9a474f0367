"""Batch-norm re-estimation before and after issue 11 on VGG-19; writes the ``calibration`` section of RESULTS.md.

1. Full-test accuracy of VGG-19 ``P90-C4-Q5`` and ``P80-C16-Q5`` (the default search's knee and a
   neighbour) recalibrated three ways: the old recipe (a class-sorted 520-image pool, its first 512
   images in batches of 128, per-batch variances averaged), and today's (class-balanced shuffled
   images, population moments over all of them) for several pool sizes and three calibration seeds.
2. The cost of one re-estimation, old recipe against today's, interleaved in the same run.
3. Whether a principled recovery (a short fine-tune keeping the compression, then re-estimation)
   recovers what class-sorted batches happened to give.

Usage:
    MOO_COMPRESS_DATA=../shared/data MOO_COMPRESS_WEIGHTS=../shared/weights python benchmarks/bench_calibration.py
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

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
    recalibrate_batchnorm,
)
from moo_compress.data import load_dataset, stratified_indices  # noqa: E402
from moo_compress.evaluation import Evaluator  # noqa: E402
from moo_compress.models import load_pretrained  # noqa: E402

PLANS = {
    "P90-C4-Q5": CompressionPlan(prune=PruneConfig(0.9), cluster=ClusterConfig(4), quantize=QuantizeConfig(5)),
    "P80-C16-Q5": CompressionPlan(prune=PruneConfig(0.8), cluster=ClusterConfig(16), quantize=QuantizeConfig(5)),
}
SEEDS = (0, 1, 2)


@torch.no_grad()
def old_recalibrate(model: nn.Module, calibration: CalibrationData, n_images: int, batch_size: int = 128) -> None:
    """The recipe before issue 11: the first ``n_images`` in order, running stats averaged over batches."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    model.eval()
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
        m.train()
    with calibration.autocast("cpu"):
        for x in calibration.batches(batch_size, limit=n_images):
            model(x)
    for m in norms:
        m.momentum = 0.1
    model.eval()


def old_calibration(train, pre, seed: int) -> CalibrationData:  # noqa: ANN001
    index = stratified_indices(train.labels, 52, seed=seed)  # sorted, so class-sorted on an ImageFolder
    return CalibrationData(train.images[index], pre.mean, pre.std, train.labels[index], precision="bf16")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", default=os.environ.get("MOO_COMPRESS_DATA", "../shared/data") + "/cifar10-jpeg")
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 512, 2048, 5000])
    parser.add_argument("--finetune-steps", type=int, default=200)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    train = load_dataset("cifar10", "train", data_root=args.data_root)
    test = load_dataset("cifar10", "test", data_root=args.data_root)
    pre = load_pretrained("vgg19", "cifar10", download=False)

    def accuracy(model: nn.Module) -> float:
        predictions = Evaluator(model, mean=pre.mean, std=pre.std, precision="bf16").predict(test.images)
        return 100 * float(np.mean(predictions == test.labels))

    def fmt(values: list[float]) -> str:
        return f"{statistics.mean(values):.2f} ({' / '.join(f'{v:.2f}' for v in values)})"

    pools = {n: {s: CalibrationData.from_dataset(train, mean=pre.mean, std=pre.std, n=n, seed=s, precision="bf16")
                 for s in SEEDS} for n in args.sizes}
    rows = []
    for name, plan in PLANS.items():
        old = []
        for s in SEEDS:
            model = compress(pre.model, plan)
            old_recalibrate(model, old_calibration(train, pre, s), 512)
            old.append(accuracy(model))
        print(name, "old", old, flush=True)
        new = {}
        for n in args.sizes:
            new[n] = []
            for s in SEEDS:
                model = compress(pre.model, plan)
                recalibrate_batchnorm(model, pools[n][s], n_images=n, seed=s)
                new[n].append(accuracy(model))
            print(name, n, new[n], flush=True)
        rows.append((name, old, new))
    plain = accuracy(pre.model)
    recal = []
    for s in SEEDS:
        model = compress(pre.model, CompressionPlan())
        recalibrate_batchnorm(model, pools[512][s], n_images=512, seed=s)
        recal.append(accuracy(model))

    # 2. cost of one re-estimation on 512 images, interleaved
    model = compress(pre.model, PLANS["P90-C4-Q5"])
    times: dict[str, list[float]] = {"old": [], "new": []}
    old_pool = old_calibration(train, pre, 0)
    for _ in range(3):
        start = time.perf_counter()
        old_recalibrate(model, old_pool, 512)
        times["old"].append(time.perf_counter() - start)
        start = time.perf_counter()
        recalibrate_batchnorm(model, pools[512][0], n_images=512)
        times["new"].append(time.perf_counter() - start)
    t_old, t_new = min(times["old"]), min(times["new"])

    # 3. fine-tune (compression kept), then re-estimate
    tuned = {}
    if args.finetune_steps:
        labelled = CalibrationData.from_dataset(train, mean=pre.mean, std=pre.std, n=5000, seed=0, precision="bf16")
        for name, plan in PLANS.items():
            recovery = RecoveryConfig(bn_images=512, finetune_steps=args.finetune_steps)
            start = time.perf_counter()
            model = compress(pre.model, CompressionPlan.from_dict({**plan.to_dict(), "recovery": recovery.to_dict()}),
                             labelled)
            tuned[name] = (accuracy(model), time.perf_counter() - start)
            print(name, "finetuned", tuned[name], flush=True)

    sizes = args.sizes
    lines = [
        "VGG-19 on the whole CIFAR-10 test set (10,000 JPEG images, bf16), top-1 in percent: mean over "
        f"calibration seeds {', '.join(map(str, SEEDS))} (each seed in brackets). The standard error of one "
        "10,000-image accuracy is about 0.4 points; the seeds' spread is the calibration's own variability.",
        "",
        f"Uncompressed: {plain:.2f} as trained; {fmt(recal)} after re-estimation on 512 balanced images.",
        "",
        "| plan | old recipe: class-sorted 512 of 520 | " + " | ".join(f"balanced, {n} images" for n in sizes) + " |",
        "|---|---:|" + "---:|" * len(sizes),
    ]
    for name, old, new in rows:
        lines.append(f"| {name} | {fmt(old)} | " + " | ".join(fmt(new[n]) for n in sizes) + " |")
    lines += [
        "",
        f"Cost of one re-estimation on 512 images (P90-C4-Q5, best of 3, interleaved): old recipe {t_old:.2f} s, "
        f"today's {t_new:.2f} s (**{t_new / t_old:.2f}x**; today's runs 512 images as one batch, the old one as "
        "four batches of 128).",
    ]
    if tuned:
        lines += ["", f"Fine-tuning {args.finetune_steps} Adam steps (batch 64, lr 1e-4, masks, clusters and grids "
                  "kept) on 5,000 balanced labelled training images, then re-estimation on 512:", ""]
        lines += [f"- {name}: {acc:.2f}% ({seconds:.0f} s for compress + fine-tune + re-estimation)"
                  for name, (acc, seconds) in tuned.items()]
    write_section("calibration", "Batch-norm re-estimation: balanced population statistics (issue 11)",
                  "\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
