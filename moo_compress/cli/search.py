"""``python -m moo_compress.search``: the multi-objective compression search.

Example:
    python -m moo_compress.search --arch vgg19                  # default space, about 25 minutes on 2 CPU cores
    python -m moo_compress.search --arch resnet20 --quick       # about a minute
    python -m moo_compress.search --arch vgg19 --space paper    # the original study's 8-plan grid
    python -m moo_compress.search --arch resnet20 --space deploy  # measured latency as a fourth objective
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from moo_compress.cli import common
from moo_compress.errors import ConfigError
from moo_compress.search.settings import (
    DEFAULTS,
    QUICK_PRESET,
    AlgorithmSettings,
    ExecutionSettings,
    FidelitySettings,
    OutputSettings,
    SearchSettings,
    TargetSettings,
    parse_budget,
)

__all__ = ["build_parser", "main"]


def _final_images(text: str) -> int | str:
    if text == "all":
        return "all"
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer or 'all', got {text!r}") from None


def _budget(text: str) -> tuple[str, float]:
    """``"250000"`` (images) or ``"1500s"``, ``"25m"``, ``"1.5h"`` (wall time); see :func:`parse_budget`."""
    try:
        return parse_budget(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _rungs(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated image counts such as 10,20,40, got {text!r}") \
            from None


def _triple(text: str) -> tuple[float, float, float]:
    try:
        values = tuple(float(x) for x in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 3:
        raise argparse.ArgumentTypeError(f"expected three comma-separated numbers such as 0.485,0.456,0.406, "
                                         f"got {text!r}")
    return values  # type: ignore[return-value]


def build_parser() -> argparse.ArgumentParser:
    """The command's argument parser."""
    parser = common.ArgumentParser(
        prog="python -m moo_compress.search",
        description="Search compression plans (pruning sparsity, cluster count, bit-width) with NSGA-II on three "
        "objectives: clean accuracy, robustness to natural corruptions and compression ratio. Writes the Pareto "
        "set, knee-point recommendations, plots and a summary to outputs/<run>/. Re-running the same command "
        "resumes or replays from the evaluation cache.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("Example:", 1)[1],
    )
    # The option groups are the groups of SearchSettings, in its order; --quick belongs to none of them.
    parser.add_argument("--quick", action="store_true", help="a small search that finishes in about a minute "
                        "(options given explicitly still win): " + _quick_preset())
    _add_target_args(parser)
    _add_algorithm_args(parser)
    _add_fidelity_args(parser)
    _add_execution_args(parser)
    _add_output_args(parser)
    return parser


def _add_target_args(parser: argparse.ArgumentParser) -> None:
    """Options of ``SearchSettings.target``: the model, its data and the search space."""
    t = parser.add_argument_group("target", "what to compress, on which data")
    common.add_model_args(parser, group=t)
    common.add_data_args(parser, group=t)
    t.add_argument("--data", metavar="DIR", help="an ImageFolder tree of your own (DIR/train/<class>/*, "
                   "DIR/test/<class>/*; any number of classes): sets --dataset imagefolder --data-root DIR")
    t.add_argument("--mean", type=_triple, metavar="R,G,B", help="input normalisation mean on [0, 1] pixels "
                   "of a model of your own (default: its checkpoint's or metadata's)")
    t.add_argument("--std", type=_triple, metavar="R,G,B", help="input normalisation standard deviation, "
                   "likewise")
    t.add_argument("--input-size", type=int, metavar="PIXELS", help="input size (square) of a model of your "
                   "own: images are resized to it, whole (default: its metadata's, else the data's size)")
    t.add_argument("--release-dir", metavar="DIR", help="a CIFAR-10-C/100-C release folder (default: found "
                   "under $MOO_COMPRESS_DATA, else corrupted images are generated and cached)")
    t.add_argument("--space", help="search space: a name in search_spaces/ (default, vgg19, resnet50, "
                   "mobilenetv2, cifar_resnet, per_group, paper), 'deploy' (the family's deployment space: structured "
                   "pruning and W8A8 with measured latency as an objective) or a YAML path; default: the architecture "
                   "family's space")
    t.add_argument("--calibration-images", metavar="N", type=int, help="training images for batch-norm re-estimation "
                   "(when the space asks for it; default: the space's recovery.bn_images)")


def _add_algorithm_args(parser: argparse.ArgumentParser) -> None:
    """Options of ``SearchSettings.algorithm``: NSGA-II's size, seed and stopping rules."""
    a = parser.add_argument_group("algorithm", "the algorithm and when it stops")
    a.add_argument("--algorithm", metavar="NAME", help="the search algorithm: nsga2 (default: the space's), nsga3 "
                   "or grid (every plan of the space)")
    a.add_argument("--pop-size", metavar="N", type=int, help="NSGA-II population (default: the space's)")
    a.add_argument("--generations", metavar="N", type=int, help="NSGA-II generations (default: the space's)")
    a.add_argument("--seed", metavar="N", type=int, default=0, help="seed of NSGA-II")
    a.add_argument("--max-evals", metavar="N", type=int, help="stop after this many evaluations")
    a.add_argument("--budget", type=_budget, metavar="N|TIME", help="stop when spent: a number of images (clean "
                   "plus corrupted, cache hits included: deterministic, the same front in every execution mode) or "
                   "a wall time such as 25m or 1500s (not deterministic); with a budget and no --generations, "
                   "NSGA-II runs until it is spent")


def _add_fidelity_args(parser: argparse.ArgumentParser) -> None:
    """Options of ``SearchSettings.fidelity``: which images measure the plans, and how many."""
    f = parser.add_argument_group("fidelity", "which images measure the plans, and how many")
    f.add_argument("--fidelity", choices=["racing", "fixed"], help="racing: every candidate starts on the first "
                   "rung's images and is promoted to the next while no front plan confidently dominates it; fixed: "
                   "every candidate on --eval-images (default: the space's fidelity.mode, racing in the shipped "
                   "spaces; fixed when --eval-images is given)")
    f.add_argument("--rungs", type=_rungs, metavar="N1,N2,...", help="racing rungs: cumulative search-split images "
                   "per (corruption, severity), e.g. 10,20,40 (default: the space's fidelity.rungs)")
    f.add_argument("--eval-images", metavar="N", type=int, help="fixed fidelity: search-split images for clean "
                   "accuracy and for every (corruption, severity) (default: the space's fidelity.images)")
    f.add_argument("--select-images", metavar="N", type=int, help="selection: the screening front and the plans "
                   "within its noise are brought to this many search-split images (the same images, extended), and "
                   "the front and recommendations are decided on them (0 = decide on the screening numbers; default: "
                   "twice the top rung, or twice --eval-images when fixed)")
    f.add_argument("--promote", metavar="N", type=int, help="recovery as a fidelity: after selection, at most N "
                   "contenders (those predicted to add most to the front) get the space's expensive recovery level "
                   "(promote.recovery, e.g. distillation fine-tuning) and join the front as plans of their own "
                   "(0 = off; default: the space's promote.plans)")
    f.add_argument("--final-images", metavar="N|all", type=_final_images, help="report: the selected plans, the "
                   "reference and the original model are measured on this many report-split images per (corruption, "
                   "severity), clean accuracy on the whole report split ('all' = every report image, 0 = no report; "
                   f"default {DEFAULTS['fidelity']['final_images']})")
    f.add_argument("--split-seed", metavar="N", type=int, default=0, help="seed of the stratified search/report "
                   "split of the test set (half each)")
    f.add_argument("--subset-seed", metavar="N", type=int, default=0, help="seed of the evaluation image subsets "
                   "and generated corruptions (fixed across --seed values, so such runs share cached evaluations)")
    f.add_argument("--held-out-images", metavar="N", type=int, help="report-split images per (corruption, "
                   "severity) of the held-out measurement (--held-out; default 50, at most --final-images)")
    f.add_argument("--report-on-search", action="store_true", help="report on the search split, the images that "
                   "selected the plans (optimistic figures; the summary warns)")


def _add_execution_args(parser: argparse.ArgumentParser) -> None:
    """Options of ``SearchSettings.execution``: where and how evaluations run."""
    e = parser.add_argument_group("execution", "where and how the evaluations run (never changes a number)")
    e.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto")
    e.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"], help="evaluation precision "
                   "(default auto: bf16 on CUDA and on CPUs with AMX, where it is faster, else fp32)")
    e.add_argument("--threads", metavar="N", type=int, help="torch CPU threads per evaluation (default "
                   f"{DEFAULTS['execution']['threads']}); part of the cache key, so --workers and --scheduler never "
                   "change the numbers")
    e.add_argument("--batch-size", metavar="N", type=int, default=None,
                   help="images per forward pass (default: 64 per CPU thread, 256 on CUDA, halved on out-of-memory)")
    e.add_argument("--workers", metavar="N", type=int, help="worker processes evaluating a generation in parallel "
                   "(default: one per GPU on CUDA, else one per --threads CPU cores)")
    e.add_argument("--scheduler", metavar="local|tcp://HOST:PORT", help="run evaluations on Dask: 'local' (a "
                   "LocalCluster of --workers) or a scheduler's address")
    e.add_argument("--cache-dir", metavar="DIR", help="cache root (default $MOO_COMPRESS_CACHE, else "
                   "~/.cache/moo_compress)")


def _add_output_args(parser: argparse.ArgumentParser) -> None:
    """Options of ``SearchSettings.output``: the run folder and its recommendations."""
    o = parser.add_argument_group("output", "the run folder and its recommendations")
    o.add_argument("--out", metavar="DIR", help="run folder (default outputs/<arch>-<space>-seed<seed>)")
    o.add_argument("--pick-min-ratio", metavar="X", type=float, default=8.0, help="recommend the most robust plan "
                   "with at least this compression ratio")
    o.add_argument("--pick-max-drop", metavar="POINTS", type=float, default=2.0, help="recommend the smallest plan "
                   "within this many points of the baseline's clean accuracy")
    o.add_argument("--held-out", choices=["recommended", "front", "off"], default="recommended",
                   help="also measure the recommended plans (or every reported plan) and the reference on "
                   "corruptions the search never saw: the reference recipe's extra ones it does not optimise "
                   "and, for 32-pixel inputs, CIFAR-10-C-bar; a plan whose robustness rank reverses there "
                   "beyond its intervals is flagged")


def _quick_preset() -> str:
    """:data:`QUICK_PRESET` as the options it stands for: ``--pop-size 6, ..., --rungs 10,20, ...``."""
    def text(value: object) -> str:
        return ",".join(map(str, value)) if isinstance(value, tuple) else str(value)

    return ", ".join(f"--{name.replace('_', '-')} {text(value)}"
                     for group in QUICK_PRESET.values() for name, value in group.items())


def settings_from_args(args: argparse.Namespace) -> SearchSettings:
    """The :class:`SearchSettings` of parsed arguments."""
    dataset, data_root = args.dataset, args.data_root
    if args.data is not None:
        if data_root is not None or dataset != "cifar10":
            raise ConfigError("--data DIR is a folder of your own; give it without --dataset/--data-root")
        dataset, data_root = "imagefolder", args.data
    kind, amount = args.budget or (None, None)
    return SearchSettings(
        TargetSettings(args.arch, dataset=dataset, data_root=data_root, weights=args.weights,
                       weights_dir=args.weights_dir, mean=args.mean, std=args.std, input_size=args.input_size,
                       release_dir=args.release_dir, space=args.space, calibration_images=args.calibration_images),
        algorithm=AlgorithmSettings(name=args.algorithm, pop_size=args.pop_size, generations=args.generations,
                                    seed=args.seed,
                                    max_evals=args.max_evals,
                                    budget_images=int(amount) if kind == "images" else None,
                                    time_budget=amount if kind == "seconds" else None),
        fidelity=FidelitySettings(mode=args.fidelity, rungs=args.rungs, eval_images=args.eval_images,
                                  select_images=args.select_images, final_images=args.final_images,
                                  split_seed=args.split_seed, subset_seed=args.subset_seed,
                                  report_on_search=args.report_on_search, held_out_images=args.held_out_images,
                                  promote=args.promote),
        execution=ExecutionSettings(device=args.device, precision=args.precision, threads=args.threads,
                                    batch_size=args.batch_size, workers=args.workers, scheduler=args.scheduler,
                                    cache_dir=args.cache_dir),
        output=OutputSettings(out=args.out, pick_min_ratio=args.pick_min_ratio, pick_max_drop=args.pick_max_drop,
                              held_out=args.held_out),
        quick=args.quick,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the search; returns the exit status (2 for user errors)."""
    parser = build_parser()
    args = parser.parse_args(argv)

    def run() -> int:
        from moo_compress.report import render_run
        from moo_compress.search.progress import console_logging, print_progress
        from moo_compress.search.run import run_search

        with console_logging():
            run_search(settings_from_args(args), render=render_run, progress=print_progress)
        return 0

    return common.guard(parser.prog, run)
