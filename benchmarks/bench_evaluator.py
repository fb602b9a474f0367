"""Evaluator throughput against the bare forward pass, and bf16 against fp32 (VGG-19 and ResNet-20).

The bare forward pass runs the model as given on already-normalised float tensors in channels-last
layout; the evaluator gets uint8 NHWC arrays, does the conversion and normalisation itself and runs a
copy of the model with its batch norms folded into the convolutions. Both use the same batch size and
precision; measurements are interleaved and repeated, and the best of the repeats is kept, so the
ratios are robust to other load on the machine.

    python benchmarks/bench_evaluator.py [--arch vgg19 resnet20] [--images 1024] [--batch-size 256] [--repeats 3]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from _results import write_section

from moo_compress.evaluation import Evaluator, autocast
from moo_compress.models import create_model, model_defaults


def bare_forward(model: torch.nn.Module, batches: list[torch.Tensor], precision: str) -> float:
    """Seconds to run the model over pre-normalised channels-last batches."""
    start = time.perf_counter()
    with torch.inference_mode(), autocast(torch.device("cpu"), precision):
        for x in batches:
            model(x).argmax(1)
    return time.perf_counter() - start


def evaluator_pass(evaluator: Evaluator, images: np.ndarray) -> float:
    """Seconds for the evaluator to predict every image from uint8."""
    start = time.perf_counter()
    evaluator.predict(images)
    return time.perf_counter() - start


def measure(arch: str, n_images: int, batch_size: int, repeats: int) -> dict[tuple[str, str], float]:
    """Best seconds of the bare forward and of the evaluator, per precision, for ``arch``."""
    defaults = model_defaults(arch)
    model = create_model(arch).eval().to(memory_format=torch.channels_last)
    images = np.random.default_rng(0).integers(0, 256, (n_images, 32, 32, 3), dtype=np.uint8)
    mean = torch.tensor(defaults.mean).view(1, 3, 1, 1)
    std = torch.tensor(defaults.std).view(1, 3, 1, 1)
    normalised = ((torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255 - mean) / std).contiguous(
        memory_format=torch.channels_last)
    batches = list(normalised.split(batch_size))

    best: dict[tuple[str, str], float] = {}
    for precision in ("fp32", "bf16"):
        evaluator = Evaluator(model, mean=defaults.mean, std=defaults.std, precision=precision,
                              batch_size=batch_size)
        evaluator_pass(evaluator, images[:batch_size])  # warm-up (oneDNN primitive creation)
        bare_forward(model, batches[:1], precision)
        for _ in range(repeats):
            for name, run in (("bare", lambda precision=precision: bare_forward(model, batches, precision)),
                              ("evaluator", lambda evaluator=evaluator: evaluator_pass(evaluator, images))):
                seconds = run()
                best[name, precision] = min(best.get((name, precision), float("inf")), seconds)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", nargs="+", default=["vgg19", "resnet20"])
    parser.add_argument("--images", type=int, default=1024)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    rows, speedups = [], []
    for arch in args.arch:
        best = measure(arch, args.images, args.batch_size, args.repeats)
        for precision in ("fp32", "bf16"):
            bare = args.images / best["bare", precision]
            ev = args.images / best["evaluator", precision]
            rows.append(f"| {arch} | {precision} | {bare:.0f} | {ev:.0f} | {ev / bare:.3f} |")
        speedups.append(f"{arch} **{best['evaluator', 'fp32'] / best['evaluator', 'bf16']:.2f}x**")
    body = (
        f"{args.images} random uint8 images, batch {args.batch_size}, best of {args.repeats} interleaved repeats. "
        "The evaluator folds batch norms into the convolutions before them, which saves a pass over every "
        "activation tensor: the ratio can exceed 1, most for narrow networks whose layers are memory-bound.\n\n"
        "| model | precision | bare forward (img/s) | evaluator (img/s) | evaluator / bare |\n|---|---|---|---|---|\n"
        + "\n".join(rows)
        + f"\n\nbf16 / fp32 evaluator speed-up: {', '.join(speedups)}. Target: the evaluator keeps >= 90% of "
        "the bare forward throughput (ratio >= 0.90)."
    )
    write_section("evaluator", "Evaluator throughput (issue 2)", body)


if __name__ == "__main__":
    main()
