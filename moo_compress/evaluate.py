"""``python -m moo_compress.evaluate``: clean top-1 accuracy of a (pretrained) model.

Example:
    python -m moo_compress.evaluate --arch resnet20 --weights resnet20-12fca82f.th --limit 1000
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence

from moo_compress import cli_utils
from moo_compress.data import dataset_info, load_dataset, stratified_indices
from moo_compress.errors import ConfigError
from moo_compress.evaluation import Evaluator
from moo_compress.models import load_pretrained

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The command's argument parser."""
    parser = cli_utils.ArgumentParser(
        prog="python -m moo_compress.evaluate",
        description="Evaluate a model's clean top-1 accuracy on a dataset's test split.",
    )
    cli_utils.add_model_args(parser)
    cli_utils.add_data_args(parser)
    cli_utils.add_runtime_args(parser)
    parser.add_argument("--limit", type=int, metavar="N", help="evaluate a fixed stratified subset of about N "
                        "images (N // classes per class, seed 0) instead of the whole test split")
    return parser


def _run(args: argparse.Namespace) -> int:
    info = dataset_info(args.dataset)
    pretrained = load_pretrained(args.arch, args.dataset, weights=args.weights, weights_dir=args.weights_dir,
                                 num_classes=info.num_classes)
    data = load_dataset(args.dataset, "test", data_root=args.data_root)
    if args.limit is not None:
        if args.limit < info.num_classes:
            raise ConfigError(f"--limit must be at least the number of classes ({info.num_classes}), got {args.limit}")
        data = data.subset(stratified_indices(data.labels, args.limit // info.num_classes, seed=0))
    evaluator = Evaluator(pretrained.model, mean=pretrained.mean, std=pretrained.std, device=args.device,
                          precision=args.precision, batch_size=args.batch_size)
    start = time.perf_counter()
    accuracy = evaluator.accuracy(data.images, data.labels)
    seconds = time.perf_counter() - start
    print(
        f"{args.arch} ({pretrained.weights_path.name}) on {args.dataset} test, {len(data)} images: "
        f"top-1 {100 * accuracy:.2f}%  [{args.precision}, {evaluator.device}, {len(data) / seconds:.0f} img/s]"
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the command; returns the exit status (2 for user errors)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    return cli_utils.guard(parser.prog, lambda: _run(args))


if __name__ == "__main__":
    raise SystemExit(main())
