"""The recovery ladder measured on the search split; writes the ``recovery-<arch>`` section of RESULTS.md.

For each plan (the uncompressed model first) and each recovery level, the compressed model's clean and
mean-corruption-accuracy deltas against the *original* model (no recovery), paired over the same
search-split images, with 95% intervals, and the time the recovery took:

* ``bn``: batch-norm re-estimation on 512 calibration images (today's default);
* ``ft<K>``: K Adam steps of fine-tuning on labels that keep the compression, then re-estimation;
* ``kd<K>``: the same K steps with distillation from the original model (KL on logits, T = 4, weight 1,
  plus label cross-entropy), then re-estimation;
* ``pkd<K>``: distillation alone (no label term);
* ``ft<K>f``, ``kd<K>f``, ``pkd<K>f``: the same with batch norm frozen during fine-tuning (re-estimated before it,
  eval mode, no dropout), so that under ``pkd<K>f`` the uncompressed model, the teacher itself, stays put.

Fine-tuning draws its batches from a class-balanced pool of ``--pool`` training images (the first
images of the calibration draw; re-estimation reads the first 512 of them). Evaluations are cached like
a search's, so a second run reads them back.

Usage:
    MOO_COMPRESS_DATA=../shared/data MOO_COMPRESS_WEIGHTS=../shared/weights \\
        python benchmarks/bench_recovery.py --arch resnet20 --steps 100 300
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import write_section  # noqa: E402

from moo_compress.compress import (  # noqa: E402
    ClusterConfig,
    CompressionPlan,
    PruneConfig,
    QuantizeConfig,
    RecoveryConfig,
)
from moo_compress.models import model_defaults  # noqa: E402
from moo_compress.search import ExecutionSettings, SearchSettings, TargetSettings  # noqa: E402
from moo_compress.search.context import space_spec  # noqa: E402
from moo_compress.search.executors import ExecutorConfig  # noqa: E402
from moo_compress.search.problem import PlanEvaluator  # noqa: E402
from moo_compress.search.reference import compare_with_original  # noqa: E402
from moo_compress.search.space import default_space, load_space  # noqa: E402

PLANS = {
    "resnet20": ["P0", "P50-Q8", "P70-C8-Q8", "P80-C4-Q8"],
    "vgg19": ["P0", "P85-C4-Q8", "P90-C4-Q5"],
}


def parse_label(label: str) -> CompressionPlan:
    """``P85-C4-Q8`` -> 85% pruning, 4 clusters, 8 bits (``P0``: nothing)."""
    prune = cluster = quantize = None
    for part in label.split("-"):
        value = int(part[1:])
        if part[0] == "P" and value:
            prune = PruneConfig(value / 100)
        elif part[0] == "C":
            cluster = ClusterConfig(value)
        elif part[0] == "Q":
            quantize = QuantizeConfig(value)
    return CompressionPlan(prune=prune, cluster=cluster, quantize=quantize)


def levels(steps: list[int], lr: float, pool: int, batch: int, augment: str | None = None) -> dict[str, RecoveryConfig]:
    """The ladder's levels by name (each fine-tuning level also with ``+augment`` when one is given)."""
    out = {"bn": RecoveryConfig(bn_images=512)}
    for k in steps:
        tune = RecoveryConfig(bn_images=512, finetune_steps=k, finetune_lr=lr, finetune_batch_size=batch,
                              finetune_images=pool)
        out[f"ft{k}"] = tune
        out[f"kd{k}"] = dataclasses.replace(tune, finetune_distill=1.0)
        out[f"pkd{k}"] = dataclasses.replace(tune, finetune_distill=1.0, finetune_label_weight=0.0)
        for name in ("ft", "kd", "pkd"):
            out[f"{name}{k}f"] = dataclasses.replace(out[f"{name}{k}"], finetune_bn="frozen")
    if augment:
        out.update({f"{name}+{augment}": dataclasses.replace(r, finetune_augment=augment)
                    for name, r in list(out.items()) if r.finetune_steps})
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", default="resnet20", choices=sorted(PLANS))
    parser.add_argument("--plans", nargs="+", help="plan labels (default: the arch's list)")
    parser.add_argument("--steps", type=int, nargs="+", default=[100])
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--levels", nargs="+", help="only these levels (e.g. bn kd100)")
    parser.add_argument("--augment", choices=["augmix"], help="also each fine-tuning level on augmented images")
    parser.add_argument("--section", help="suffix of the RESULTS.md section (recovery-<arch>-<section>)")
    parser.add_argument("--held-out", action="store_true", help="also the mean accuracy over the 4 extra "
                        "corruptions (never searched) on the same images, against the original")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--pool", type=int, default=4096, help="fine-tuning's training pool (calibration images)")
    parser.add_argument("--images", type=int, default=40, help="search-split images per (corruption, severity)")
    parser.add_argument("--clean-multiple", type=int, default=25, help="clean images per corrupted image")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)

    data = os.environ.get("MOO_COMPRESS_DATA", "../shared/data")
    settings = SearchSettings(TargetSettings(args.arch, data_root=f"{data}/cifar10-jpeg"),
                              execution=ExecutionSettings(precision="fp32", device="cpu", workers=1,
                                                          threads=args.threads)).resolved()
    space = load_space(default_space(model_defaults(args.arch).family, None))
    spec = space_spec(settings, space, None, split="search")  # the space's corruptions and severities
    spec = dataclasses.replace(spec.with_window(0, args.images), clean_multiple=args.clean_multiple,
                               calibration_images=args.pool).resolved()
    evaluator = PlanEvaluator(spec, spec.cache_dir or "", ExecutorConfig(workers=1))
    original = evaluator([CompressionPlan()])[0]
    held = None
    if args.held_out:
        from moo_compress.data.corruptions import EXTRA_CORRUPTIONS

        held_spec = dataclasses.replace(spec, corruptions=tuple(EXTRA_CORRUPTIONS), clean_fingerprint="",
                                        corrupted_fingerprint="").resolved()
        held = PlanEvaluator(held_spec, held_spec.cache_dir or "", ExecutorConfig(workers=1))
        held_original = held([CompressionPlan()])[0]
    rows = []
    for label in args.plans or PLANS[args.arch]:
        base = parse_label(label)
        for name, recovery in levels(args.steps, args.lr, args.pool, args.batch, args.augment).items():
            if args.levels and name not in args.levels:
                continue
            plan = dataclasses.replace(base, recovery=recovery)
            start = time.perf_counter()
            record = evaluator([plan])[0]
            wall = time.perf_counter() - start
            if not record.ok:
                print(f"{label} {name}: failed: {record.error}", flush=True)
                continue
            clean, mca = compare_with_original(record, original, spec.corruptions, spec.severities)
            seconds = record.compress_seconds  # as measured when it was computed (a cache hit keeps it)
            extra = None
            if held is not None:
                _, extra = compare_with_original(held([plan])[0], held_original, held.spec.corruptions,
                                                 spec.severities)
                print(f"{label:>10} {name:>6}: held-out mca {extra.estimate:+5.1f} [{extra.low:+.1f}, "
                      f"{extra.high:+.1f}]", flush=True)
            rows.append((label, name, record.compression_ratio, clean, mca, seconds, extra))
            print(f"{label:>10} {name:>6}: {record.compression_ratio:5.1f}x clean {clean.estimate:+5.1f} "
                  f"[{clean.low:+.1f}, {clean.high:+.1f}] mca {mca.estimate:+5.1f} [{mca.low:+.1f}, {mca.high:+.1f}] "
                  f"compress+recover {seconds:.0f}s{' (cached)' if record.cache_hit else ''} (wall {wall:.0f}s)",
                  flush=True)
    body = [
        f"{args.arch}, search split: {original.n_clean:,} clean images and {args.images} images per (corruption, "
        f"severity) x {len(spec.corruptions)} corruptions x {len(spec.severities)} severities. The original model: "
        f"clean {100 * original.clean_accuracy:.2f}%, mean corruption accuracy "
        f"{100 * sum(original.corruption_accuracy.values()) / len(original.corruption_accuracy):.2f}%. Deltas are "
        "against the original (points, paired 95% intervals over the same images). Fine-tuning: "
        "Adam at "
        f"{args.lr:g}, batch {args.batch}, from a class-balanced pool of {args.pool:,} training images; every "
        "level re-estimates batch norm on 512 images: after fine-tuning, or before it for the levels ending in f "
        "(fine-tuning then runs in eval mode on those statistics, which are kept). Time: compressing plus "
        "recovery, one process, "
        f"{args.threads} threads, as measured when first computed (a second run reads the evaluations back).",
        "",
        "| plan | ratio | level | clean delta | mean corruption acc. delta | held-out (4 extra) delta "
        "| compress + recover (s) |",
        "|---|---|---|---|---|---|---|",
    ]
    for label, name, ratio, clean, mca, seconds, extra in rows:
        held_text = "" if extra is None else f"{extra.estimate:+.2f} [{extra.low:+.2f}, {extra.high:+.2f}]"
        body.append(f"| {label} | {ratio:.1f}x | {name} | {clean.estimate:+.2f} [{clean.low:+.2f}, {clean.high:+.2f}] "
                    f"| {mca.estimate:+.2f} [{mca.low:+.2f}, {mca.high:+.2f}] | {held_text} | {seconds:.0f} |")
    name = f"recovery-{args.arch}" + (f"-{args.section}" if args.section else "")
    write_section(name, f"Recovery ladder on {args.arch} (issue 24){' ' + args.section if args.section else ''}",
                  "\n".join(body))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
