"""``python -m moo_compress.train``: train a CIFAR model with a standard recipe.

Example:
    python -m moo_compress.train --arch resnet20 --dataset cifar10 --epochs 30 --out resnet20-cifar10.pt

The checkpoint records arch, dataset, normalisation, test accuracy and the recipe, so every other
command can use it (``--weights PATH``, or place it in ``$MOO_COMPRESS_WEIGHTS``). An interrupted run
resumes from its last finished epoch when the same command is run again.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from moo_compress import __version__
from moo_compress.cli import common
from moo_compress.data import dataset_info, load_dataset, stratified_indices
from moo_compress.errors import ConfigError
from moo_compress.models import create_model, model_defaults, save_checkpoint
from moo_compress.training import TrainRecipe, train_model

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The command's argument parser."""
    defaults = TrainRecipe()
    parser = common.ArgumentParser(
        prog="python -m moo_compress.train",
        description="Train a model from scratch on CIFAR (SGD Nesterov, OneCycle, label smoothing, "
        "crop+flip, bf16 autocast where supported). Resumable: rerun the same command after an interruption.",
    )
    parser.add_argument("--arch", required=True, help="architecture, e.g. resnet20, vgg19, mobilenetv2")
    common.add_data_args(parser)
    parser.add_argument("--out", required=True, metavar="PATH", help="checkpoint to write (a resumable state "
                        "file PATH.state.pt is kept beside it until training finishes)")
    parser.add_argument("--epochs", type=int, default=defaults.epochs)
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--lr", type=float, default=defaults.lr, help="peak OneCycle learning rate")
    parser.add_argument("--weight-decay", type=float, default=defaults.weight_decay)
    parser.add_argument("--label-smoothing", type=float, default=defaults.label_smoothing)
    parser.add_argument("--warmup-fraction", type=float, default=defaults.warmup_fraction)
    parser.add_argument("--no-augment", action="store_true", help="disable random crop and flip")
    parser.add_argument("--precision", default="auto", choices=["auto", "bf16", "fp32"],
                        help="training autocast precision; auto = bf16 where the hardware supports it")
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto")
    parser.add_argument("--limit", type=int, metavar="N", help="train on a stratified subset of about N "
                        "training images (for quick experiments)")
    parser.add_argument("--no-resume", action="store_true", help="ignore (and overwrite) an existing state file")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (one line per epoch)")
    return parser


def _run(args: argparse.Namespace) -> int:
    info = dataset_info(args.dataset)
    defaults = model_defaults(args.arch)
    recipe = TrainRecipe(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, weight_decay=args.weight_decay,
                         label_smoothing=args.label_smoothing, warmup_fraction=args.warmup_fraction,
                         augment=not args.no_augment, precision=args.precision, seed=args.seed)
    out = Path(args.out).expanduser()
    if out.is_dir():
        raise ConfigError(f"--out {out} is a folder; give a file path such as {out}/{args.arch}-{args.dataset}.pt")
    train = load_dataset(args.dataset, "train", data_root=args.data_root)
    test = load_dataset(args.dataset, "test", data_root=args.data_root)
    if args.limit is not None:
        if args.limit < info.num_classes:
            raise ConfigError(f"--limit must be at least {info.num_classes}, got {args.limit}")
        train = train.subset(stratified_indices(train.labels, args.limit // info.num_classes, seed=args.seed))
    state_path = out.with_name(out.name + ".state.pt")
    if args.no_resume and state_path.exists():
        state_path.unlink()
    model = create_model(args.arch, num_classes=info.num_classes)
    print(f"training {args.arch} on {args.dataset} ({len(train)} images) for {recipe.epochs} epochs -> {out}")
    result = train_model(model, train, recipe=recipe, mean=defaults.mean, std=defaults.std, device=args.device,
                         test=test, state_path=state_path, progress=not args.no_progress)
    save_checkpoint(out, model, metadata={
        "arch": args.arch,
        "dataset": args.dataset,
        "num_classes": info.num_classes,
        "mean": list(defaults.mean),
        "std": list(defaults.std),
        "test_accuracy": result.test_accuracy,
        "recipe": {**recipe.to_dict(), "precision_used": result.precision, "train_images": len(train)},
        "train_data": train.fingerprint,
        "moo_compress_version": __version__,
    })
    state_path.unlink(missing_ok=True)
    acc = "n/a" if result.test_accuracy is None else f"{100 * result.test_accuracy:.2f}%"
    print(f"saved {out}: test top-1 {acc} after {result.epochs_done} epochs ({result.seconds / 60:.1f} min)")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the command; returns the exit status (2 for user errors)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    return common.guard(parser.prog, lambda: _run(args))


if __name__ == "__main__":
    raise SystemExit(main())
