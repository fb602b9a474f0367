"""Sanity check: a pretrained CIFAR-10 model's accuracy under every corruption and severity.

Evaluates a model on a fixed stratified subset of CIFAR-10-C. The images come from a release folder
(``--release-dir``, e.g. the output of ``python -m moo_compress.corrupt --out DIR``) or are generated
on the fly. It writes a table of accuracy per corruption and severity, with the per-family and
per-severity means, to the "cifar10c_accuracy" section of ``benchmarks/RESULTS.md``. A model
behaving like those in the published CIFAR-10-C results loses accuracy with severity, and noise and
blur hurt it most.

Run: ``MOO_COMPRESS_DATA=../shared/data MOO_COMPRESS_WEIGHTS=../shared/weights
python benchmarks/cifar10c_accuracy.py --arch resnet20 --release-dir /tmp/CIFAR-10-C --n-per-class 100``
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _results import write_section  # noqa: E402

from moo_compress.data import load_dataset  # noqa: E402
from moo_compress.data.cifar_c import load_corrupted  # noqa: E402
from moo_compress.evaluation import (
    Evaluator,  # noqa: E402
    metrics,  # noqa: E402
)
from moo_compress.evaluation.robustness import evaluate_robustness  # noqa: E402
from moo_compress.models import load_pretrained  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--arch", default="resnet20")
    parser.add_argument("--weights-dir", help="default: $MOO_COMPRESS_WEIGHTS")
    parser.add_argument("--data-root", help="clean CIFAR-10 (default: found under $MOO_COMPRESS_DATA)")
    parser.add_argument("--release-dir", help="CIFAR-10-C folder (default: found, else generated)")
    parser.add_argument("--n-per-class", type=int, default=100)
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    args = parser.parse_args()

    clean = load_dataset("cifar10", "test", data_root=args.data_root)
    corrupted = load_corrupted(clean, corruptions="all", n_per_class=args.n_per_class, release_dir=args.release_dir,
                               progress=True)
    pretrained = load_pretrained(args.arch, "cifar10", weights_dir=args.weights_dir)
    evaluator = Evaluator(pretrained.model, mean=pretrained.mean, std=pretrained.std, precision=args.precision,
                          batch_size=500)
    start = time.perf_counter()
    clean_accuracy = evaluator.accuracy(clean.images[corrupted.indices], corrupted.labels)
    table = evaluate_robustness(evaluator, corrupted, progress=True)
    seconds = time.perf_counter() - start

    grid = table.pivot(index="corruption", columns="severity", values="accuracy").loc[list(corrupted.corruptions)]
    lines = [
        f"{args.arch} ({pretrained.weights_path.name}) on {len(corrupted):,} test images ({args.n_per_class} per "
        f"class, seed 0) from `{corrupted.source.split(' ', 1)[0]}` images; evaluated in {seconds:.0f} s. "
        f"Clean accuracy on these images: **{100 * clean_accuracy:.1f}%**. Accuracy in %:",
        "",
        "| corruption | family | " + " | ".join(f"s{s}" for s in corrupted.severities) + " | mean |",
        "|---|---|" + "---:|" * (len(corrupted.severities) + 1),
    ]
    for name, row in grid.iterrows():
        cells = " | ".join(f"{100 * v:.1f}" for v in row)
        family = metrics.accuracy_by_family(table, corruptions=[name])
        lines.append(f"| {name} | {next(iter(family))} | {cells} | {100 * row.mean():.1f} |")
    by_family = metrics.accuracy_by_family(table)
    by_severity = metrics.accuracy_by_severity(table)
    lines += [
        "",
        "Over the 15 benchmark corruptions: mean corruption accuracy "
        f"**{100 * metrics.mean_corruption_accuracy(table):.1f}%** "
        f"(unnormalised mCE {metrics.unnormalised_mce(table):.1f}); "
        "by severity " + ", ".join(f"s{s} {100 * v:.1f}%" for s, v in by_severity.items()) + "; "
        "by family " + ", ".join(f"{f} {100 * v:.1f}%" for f, v in by_family.items()) + ".",
    ]
    write_section("cifar10c_accuracy", f"CIFAR-10-C accuracy of {args.arch} (sanity check)", "\n".join(lines))


if __name__ == "__main__":
    main()
