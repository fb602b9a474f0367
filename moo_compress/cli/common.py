"""Pieces shared by the command-line modules: one-line errors, common options, exit codes.

Every command exposes ``main(argv) -> int`` (so tests call it directly). User errors
(:class:`~moo_compress.errors.MooCompressError` and bad options) print one line on stderr and return 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import NoReturn

from moo_compress.errors import MooCompressError

__all__ = [
    "ArgumentParser",
    "add_model_args",
    "add_data_args",
    "add_runtime_args",
    "guard",
]


class ArgumentParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line (no usage block) with exit status 2."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        kwargs.setdefault("formatter_class", argparse.ArgumentDefaultsHelpFormatter)
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def add_model_args(parser: argparse.ArgumentParser, *, arch_required: bool = True,
                   group: argparse._ArgumentGroup | None = None) -> None:
    """--arch, --weights, --weights-dir (into ``group`` when given, else a group of their own)."""
    group = group or parser.add_argument_group("model")
    group.add_argument("--arch", "--model", dest="arch", required=arch_required,
                       help="architecture, e.g. vgg19, resnet20, mobilenetv2 (python -m moo_compress.models lists "
                       "them), or a model of your own: path/to/file.py:factory, pkg.module:factory, "
                       "torchvision:<name>, timm:<name>")
    group.add_argument("--weights", metavar="PATH", help="checkpoint file (state_dict, or a dict holding "
                       "'state_dict'/'model'); default: looked up in --weights-dir, else downloaded")
    group.add_argument("--weights-dir", metavar="DIR", help="folder searched for '<arch>*<dataset>*' checkpoints "
                       "(default: $MOO_COMPRESS_WEIGHTS, else ~/.cache/moo_compress/weights)")


def add_data_args(parser: argparse.ArgumentParser, *, group: argparse._ArgumentGroup | None = None) -> None:
    """--dataset, --data-root (into ``group`` when given, else a group of their own)."""
    group = group or parser.add_argument_group("data")
    group.add_argument("--dataset", default="cifar10", help="cifar10 or cifar100")
    group.add_argument("--data-root", metavar="DIR", help="the dataset's folder: a torchvision root or an ImageFolder "
                       "tree with train/ and test/ (default: found under $MOO_COMPRESS_DATA, else downloaded)")


def add_runtime_args(parser: argparse.ArgumentParser) -> None:
    """--device, --precision, --batch-size."""
    group = parser.add_argument_group("runtime")
    group.add_argument("--device", default="auto", help="cpu, cuda, cuda:N, or auto (CUDA when present)")
    group.add_argument("--precision", default="fp32", choices=["fp32", "bf16"], help="inference precision "
                       "(bf16 autocast is about 2x faster on recent CPUs)")
    group.add_argument("--batch-size", type=int, default=None, help="images per forward pass (default: 64 per "
                       "CPU thread, 256 on CUDA, halved on out-of-memory)")


def guard(prog: str, run: Callable[[], int]) -> int:
    """Runs ``run``; a :class:`MooCompressError` becomes one line on stderr and exit status 2."""
    try:
        return run()
    except MooCompressError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
