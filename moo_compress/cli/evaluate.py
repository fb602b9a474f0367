"""``python -m moo_compress.evaluate``: evaluate a model, or re-evaluate compression plans.

Without ``--run``/``--plan`` it prints the clean top-1 accuracy of the (pretrained) model. With them
it compresses the model with each selected plan and prints clean accuracy, robustness and compression
ratio, and each plan's deltas against the reference (the uncompressed model after the same recovery,
on the same images) with paired 95% intervals, through the evaluation cache, a line per plan as it is
evaluated; ``--export DIR`` also writes each compressed model as a packed file, ``--export-onnx PATH`` as
an ONNX file for ONNX Runtime (PATH is the file for one plan, else a folder), with its clean accuracy in
ONNX Runtime beside PyTorch's; ``--latency`` times each plan's deployed form against its reference's on this
machine (as the run measured latency, else ONNX Runtime on 1 thread).

A run's plans are re-evaluated on its *report* split by default (``--split report``: the images the
search never used to choose them); ``--split search`` or ``all`` warns that the numbers are optimistic.
Plans given without ``--run`` use the whole test set. ``--images`` defaults to 500 per (corruption,
severity), clean accuracy on every image of the split: minutes on a 2-core CPU for ResNet-20 and
VGG-19; ``--images all`` (full fidelity) is an explicit, much slower choice.

Examples:
    python -m moo_compress.evaluate --arch resnet20 --weights resnet20-12fca82f.th --limit 1000
    python -m moo_compress.evaluate --run outputs/vgg19-vgg19-seed0 --select knee
    python -m moo_compress.evaluate --run outputs/vgg19-vgg19-seed0 --select 0 3 --export exported/
    python -m moo_compress.evaluate --run outputs/vgg19-vgg19-seed0 --select 0 --export-onnx vgg19-row0.onnx
    python -m moo_compress.evaluate --run outputs/resnet20-deploy_cifar_resnet-seed0 --select pareto --latency
    python -m moo_compress.evaluate --run outputs/vgg19-vgg19-seed0 --select nbi_knee --images all
    python -m moo_compress.evaluate --arch vgg19 --plan '{"sparsity": 0.5, "clusters": 16, "bits": 8}'
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
import time
from collections.abc import Iterator, Sequence
from typing import Any

from moo_compress.cli import common
from moo_compress.data import dataset_info, load_dataset, stratified_indices
from moo_compress.errors import ConfigError
from moo_compress.evaluation import Evaluator
from moo_compress.models import load_pretrained

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The command's argument parser."""
    parser = common.ArgumentParser(
        prog="python -m moo_compress.evaluate",
        description="Evaluate a model's clean top-1 accuracy on a dataset's test split, or re-evaluate compression "
                    "plans (--run / --plan) against their reference with paired 95%% intervals.",
    )
    common.add_model_args(parser, arch_required=False)
    common.add_data_args(parser)
    common.add_runtime_args(parser)
    parser.set_defaults(precision=None)  # fp32, or the run's precision when re-evaluating a run
    parser.add_argument("--limit", type=int, metavar="N", help="evaluate a fixed stratified subset of about N "
                        "images (N // classes per class, seed 0) instead of the whole test split")
    plans = parser.add_argument_group("re-evaluating compression plans")
    plans.add_argument("--run", metavar="DIR", help="a search run folder (outputs/<run>): model, data and plans "
                       "come from its config.yaml")
    plans.add_argument("--select", nargs="+", metavar="WHICH", help="plans of --run: 'knee' (the recommendations), "
                       "'pareto' (the whole front), a recommendation method of knees.json (e.g. nbi_knee) or row "
                       "numbers of pareto.csv (default: knee)")
    plans.add_argument("--plan", action="append", metavar="JSON", help="a plan, either shorthand "
                       "'{\"sparsity\": 0.5, \"clusters\": 16, \"bits\": 8, \"bn_images\": 512}' or a full "
                       "CompressionPlan JSON; repeatable")
    plans.add_argument("--split", choices=["report", "search", "all"], default=argparse.SUPPRESS,
                       help="part of the test set to evaluate on (default: report with --run, the images the search "
                       "never used to choose its plans, with the run's split seed; all without --run); search and "
                       "all include the images that selected a run's plans, so they warn that the numbers are "
                       "optimistic")
    plans.add_argument("--images", metavar="N|all", default=argparse.SUPPRESS,
                       help="images per (corruption, severity), drawn stratified from the split (default 500: "
                       "minutes on a 2-core CPU for ResNet-20 and VGG-19); clean accuracy always uses every image of "
                       "the split; 'all' = every image of the split (full fidelity, about 10x slower on CIFAR-10)")
    plans.add_argument("--workers", type=int, metavar="N", default=argparse.SUPPRESS,
                       help="processes evaluating plans not yet cached (default: one per CPU core, or per GPU)")
    plans.add_argument("--export", metavar="DIR", help="write each compressed model as a packed file into DIR")
    plans.add_argument("--export-onnx", metavar="PATH", help="write each compressed model as an ONNX file for ONNX "
                       "Runtime (uint8 NHWC images in, logits out; int8 QDQ for plans with 8-bit activations): PATH "
                       "is the file when it ends in .onnx (one plan), else a folder; reports its clean top-1 in ONNX "
                       "Runtime beside PyTorch's (needs the deploy extra)")
    plans.add_argument("--latency", action="store_true", help="also time each plan's deployed form against its "
                       "reference's on this machine (batch 1 and a larger batch, with the spread of repeated runs): "
                       "with --run as the run measured latency, else ONNX Runtime, 1 thread, 100 runs")
    plans.add_argument("--cache-dir", metavar="DIR", help="cache root (default $MOO_COMPRESS_CACHE)")
    return parser


def _run(args: argparse.Namespace) -> int:
    info = dataset_info(args.dataset)
    pretrained = load_pretrained(args.arch, args.dataset, weights=args.weights, weights_dir=args.weights_dir,
                                 num_classes=info.num_classes)
    from moo_compress.data.resize import resize_images
    from moo_compress.search.candidate import model_sizing

    sizing = model_sizing(pretrained)
    data = load_dataset(args.dataset, "test", data_root=args.data_root, sizing=sizing)
    if args.limit is not None:
        if args.limit < info.num_classes:
            raise ConfigError(f"--limit must be at least the number of classes ({info.num_classes}), got {args.limit}")
        data = data.subset(stratified_indices(data.labels, args.limit // info.num_classes, seed=0))
    precision = args.precision or "fp32"
    evaluator = Evaluator(pretrained.model, mean=pretrained.mean, std=pretrained.std, device=args.device,
                          precision=precision, batch_size=args.batch_size)
    start = time.perf_counter()
    images = data.images if sizing is None else resize_images(data.images, sizing.size)
    accuracy = evaluator.accuracy(images, data.labels)
    seconds = time.perf_counter() - start
    print(
        f"{args.arch} ({pretrained.weights_path.name}) on {args.dataset} test, {len(data)} images: "
        f"top-1 {100 * accuracy:.2f}%  [{precision}, {evaluator.device}, {len(data) / seconds:.0f} img/s]"
    )
    return 0


@contextlib.contextmanager
def _progress_to_stdout() -> Iterator[None]:
    """Prints the re-evaluation's progress lines (its logger, INFO) as they come, message only."""
    progress = logging.getLogger("moo_compress.search.reevaluate")
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(message)s"))
    level, propagate = progress.level, progress.propagate
    progress.addHandler(handler)
    progress.setLevel(logging.INFO)
    progress.propagate = False  # shown once, here, whatever the root logger does
    try:
        yield
    finally:
        progress.removeHandler(handler)
        progress.setLevel(level)
        progress.propagate = propagate


def _reevaluate(args: argparse.Namespace) -> int:
    """Re-evaluates the plans of ``--run`` / ``--plan``; prints progress, then the results."""
    # imported here: the search stack is heavy and evaluating a single model does not need it
    from moo_compress.data.corruptions import BENCHMARK_CORRUPTIONS
    from moo_compress.report.rundata import load_run
    from moo_compress.search import reevaluate as rv
    from moo_compress.search.settings import (
        DEFAULTS,
        ExecutionSettings,
        SearchSettings,
        TargetSettings,
    )

    overrides: dict[str, Any] = {"device": args.device, "batch_size": args.batch_size, "cache_dir": args.cache_dir,
                                 "precision": args.precision}
    split = rv.split_option(getattr(args, "split", None), run=bool(args.run))
    plans: list[tuple[str, Any]] = []
    run = warning = None
    if args.run:
        run = load_run(args.run)
        settings = rv.run_settings(run, overrides)
        corruptions, severities = tuple(run.info["corruptions"]), tuple(run.info["severities"])
        params = run.info.get("corruption_params")
        plans += rv.select_plans(run, args.select or ["knee"])
        warning = rv.selection_warning(split, run)
    else:
        if args.arch is None:
            raise ConfigError("--plan without --run needs --arch (and --weights unless found by name)")
        settings = SearchSettings(
            TargetSettings(args.arch, dataset=args.dataset, weights=args.weights, weights_dir=args.weights_dir,
                           data_root=args.data_root),
            execution=ExecutionSettings(threads=DEFAULTS["execution"]["threads"],
                                        **{k: v for k, v in overrides.items() if v is not None}))
        corruptions, severities, params = BENCHMARK_CORRUPTIONS, (1, 2, 3, 4, 5), None
    plans += [(f"--plan {i}", rv.parse_plan(text)) for i, text in enumerate(args.plan or [])]
    if warning:
        print(f"warning: {warning}", file=sys.stderr, flush=True)
    images = rv.DEFAULT_IMAGES if getattr(args, "images", None) is None else args.images
    with _progress_to_stdout():
        result = rv.reevaluate_plans(settings, plans, corruptions=corruptions, severities=severities,
                                     corruption_params=params, images=rv.images_option(images), split=split,
                                     export_dir=args.export, onnx_export=args.export_onnx,
                                     workers=getattr(args, "workers", None), warning=warning,
                                     latency=rv.run_latency(run) if args.latency else None)
    print()
    print(rv.format_results(result))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the command; returns the exit status (2 for user errors)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.run is None and args.plan is None:
        if args.arch is None:
            parser.error("--arch is required (or --run / --plan to re-evaluate compression plans)")
        if args.select or args.export or args.export_onnx or args.latency or any(
                hasattr(args, k) for k in ("split", "images", "workers")):
            parser.error("--select, --split, --images, --workers, --export, --export-onnx and --latency need --run or "
                         "--plan")
        return common.guard(parser.prog, lambda: _run(args))

    return common.guard(parser.prog, lambda: _reevaluate(args))


if __name__ == "__main__":
    raise SystemExit(main())
