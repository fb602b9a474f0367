"""The Adam rate of the deploy spaces' fine-tuning; writes the ``finetune-lr`` section of RESULTS.md.

For each ``finetune_lr`` (0 = batch-norm re-estimation only) the reference (the uncompressed model after
the recovery) and P50rl (half the filters of every removable layer pruned) get the deploy spaces'
recovery (2,048 training images; 50 steps of fine-tuning, then batch-norm re-estimation) and are
scored on a fixed stratified subset of the test set, with 95% intervals: each model's accuracy, and
the paired difference against the original model (for the reference: what the recovery alone does) or
against the reference of the same rate (for P50rl: what the pruning does).

Usage:
    MOO_COMPRESS_DATA=../shared/data MOO_COMPRESS_WEIGHTS=../shared/weights \\
        python benchmarks/bench_finetune_lr.py --arch vgg19 --lrs 0 3e-5 1e-4 3e-4 1e-3
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import write_section  # noqa: E402

from moo_compress.compress import CompressionPlan, PruneConfig, RecoveryConfig, compress  # noqa: E402
from moo_compress.compress.calibration import CalibrationData  # noqa: E402
from moo_compress.data import load_dataset, stratified_indices  # noqa: E402
from moo_compress.evaluation import Evaluator  # noqa: E402
from moo_compress.evaluation.stats import paired_difference_interval  # noqa: E402
from moo_compress.models import load_pretrained  # noqa: E402


def _pm(interval: object) -> str:
    return f"{100 * interval.estimate:+.1f} [{100 * interval.low:+.1f}, {100 * interval.high:+.1f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", default="vgg19")
    parser.add_argument("--lrs", nargs="+", type=float, default=[0.0, 3e-5, 1e-4, 3e-4, 1e-3])
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--per-class", type=int, default=100, help="test images per class (seed 1)")
    args = parser.parse_args()
    torch.manual_seed(0)
    pre = load_pretrained(args.arch, "cifar10")
    test = load_dataset("cifar10", "test")
    test = test.subset(stratified_indices(test.labels, args.per_class, seed=1))
    train = load_dataset("cifar10", "train")
    calibration = CalibrationData.from_dataset(train, mean=pre.mean, std=pre.std, n=2048, seed=0, precision="fp32")

    def correct(model: torch.nn.Module) -> np.ndarray:
        evaluator = Evaluator(model, mean=pre.mean, std=pre.std, device="cpu", precision="fp32")
        return evaluator.predict(test.images) == test.labels

    original = correct(pre.model)
    prune = PruneConfig(0.5, scope="layer", structured=True, removable_only=True)
    rows = []
    for lr in args.lrs:
        started = time.perf_counter()
        recovery = RecoveryConfig(bn_images=2048, finetune_steps=args.steps if lr > 0 else 0,
                                  finetune_lr=lr if lr > 0 else 1e-4)
        reference = correct(compress(pre.model, CompressionPlan(recovery=recovery, exclude_classifier=True),
                                     calibration=calibration))
        pruned = correct(compress(pre.model, CompressionPlan(prune=prune, recovery=recovery, exclude_classifier=True),
                                  calibration=calibration))
        rows.append(f"| {lr:g} | {100 * reference.mean():.1f}% "
                    f"| {_pm(paired_difference_interval(reference, original))} "
                    f"| {100 * pruned.mean():.1f}% | {_pm(paired_difference_interval(pruned, reference))} |")
        print(rows[-1], f"({time.perf_counter() - started:.0f} s)", flush=True)
    body = "\n".join([
        f"{args.arch} on {len(test):,} CIFAR-10 test images ({args.per_class} per class, seed 1), fp32; the original "
        f"model {100 * original.mean():.1f}%. Recovery as in the deploy spaces: {args.steps} Adam steps of 64 of "
        "2,048 training images (0: none), then batch-norm re-estimation on them. Points with paired 95% intervals.",
        "",
        "| `finetune_lr` | reference | reference - original | P50rl | P50rl - reference |",
        "|---|---|---|---|---|",
        *rows,
        "",
        "Adam moves every weight by about the rate each step, whatever its gradient: a rate that suits a small "
        "network wrecks a converged large one. The deploy spaces of VGG-19, ResNet-50, MobileNetV2 and models of "
        "one's own use 1e-4; the CIFAR ResNets keep 1e-3.",
    ])
    write_section("finetune-lr", f"Fine-tuning rate of the deploy spaces ({args.arch})", body)


if __name__ == "__main__":
    main()
