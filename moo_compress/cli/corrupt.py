"""``python -m moo_compress.corrupt``: regenerate CIFAR-10-C / CIFAR-100-C (or a part of it) in the release layout.

Examples:
    python -m moo_compress.corrupt --dataset cifar10 --out /data/CIFAR-10-C
    python -m moo_compress.corrupt --corruptions noise fog --severities 3 5 --limit 1000 --out /tmp/c10c
    python -m moo_compress.corrupt --preview grid.png                      # one image, every corruption
    python -m moo_compress.corrupt --download-release --out /data          # the official archive (2.9 GB)
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence

import numpy as np

from moo_compress.cli import common
from moo_compress.data import dataset_info, load_dataset, stratified_indices
from moo_compress.data.cifar_c import download_release, generate_release, open_release
from moo_compress.data.corruption_preview import save_preview
from moo_compress.data.corruptions import check_severities, corrupt, resolve_corruptions
from moo_compress.errors import ConfigError

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The command's argument parser."""
    parser = common.ArgumentParser(
        prog="python -m moo_compress.corrupt",
        description="Generate the CIFAR-C corruptions of a test set in the official release layout "
                    "(<corruption>.npy with severity blocks, labels.npy), or download the official release.",
    )
    common.add_data_args(parser)
    parser.add_argument("--corruptions", nargs="+", metavar="NAME", default=["all"],
                        help="corruption names or groups: all, benchmark (the 15), extra (the 4), noise, blur, "
                             "weather, digital")
    parser.add_argument("--severities", nargs="+", type=int, metavar="S", default=[1, 2, 3, 4, 5],
                        help="severities to generate (1..5)")
    parser.add_argument("--limit", type=int, metavar="N", help="only a fixed stratified subset of about N test "
                        "images (N // classes per class, drawn with --seed)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the corruptions (and of --limit's subset)")
    parser.add_argument("--out", metavar="DIR", help="output folder (created); files are written atomically and "
                        "a rerun skips the corruptions already complete")
    parser.add_argument("--workers", type=int, help="processes to use; None means one per CPU")
    parser.add_argument("--preview", metavar="FILE.png", help="save a grid of one image under every corruption "
                        "and severity")
    parser.add_argument("--preview-index", type=int, default=0, metavar="I",
                        help="which image of the (limited) test set the preview shows")
    parser.add_argument("--download-release", action="store_true", help="download and extract the official "
                        "Zenodo archive of --dataset into --out instead of generating (MD5-checked)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return parser


def _preview(args: argparse.Namespace, images: np.ndarray, names: tuple[str, ...], sevs: tuple[int, ...]) -> None:
    index = args.preview_index
    if not 0 <= index < len(images):
        raise ConfigError(f"--preview-index must be in [0, {len(images)}), got {index}")
    if args.out:  # show exactly what was written
        release = open_release(args.out, corruptions=names)
        cells = {(c, s): release.images(c, s)[index] for c in names for s in sevs}
    else:
        one = images[index: index + 1]
        cells = {(c, s): corrupt(one, c, s, seed=args.seed)[0] for c in names for s in sevs}
    save_preview(args.preview, images[index], cells, corruptions=names, severities=sevs,
                 title=f"{args.dataset} test image {index}")
    print(f"preview: {args.preview}")


def _run(args: argparse.Namespace) -> int:
    if args.download_release:
        if not args.out:
            raise ConfigError("--download-release needs --out DIR (the folder to extract the release into)")
        folder = download_release(args.dataset, args.out, progress=not args.no_progress)
        release = open_release(folder)
        print(f"{folder}: {len(release.corruptions)} corruptions x {len(release.severities)} severities "
              f"x {len(release)} images")
        return 0
    if not args.out and not args.preview:
        raise ConfigError("nothing to do: pass --out DIR to generate, and/or --preview FILE.png")
    names = resolve_corruptions(args.corruptions)
    sevs = check_severities(args.severities)
    if args.workers is not None and args.workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {args.workers}")
    info = dataset_info(args.dataset)
    data = load_dataset(args.dataset, "test", data_root=args.data_root)
    if args.limit is not None:
        if args.limit < info.num_classes:
            raise ConfigError(f"--limit must be at least the number of classes ({info.num_classes}), got {args.limit}")
        data = data.subset(stratified_indices(data.labels, args.limit // info.num_classes, seed=args.seed))
    if args.out:
        start = time.perf_counter()
        generate_release(data, args.out, corruptions=names, severities=sevs, seed=args.seed, workers=args.workers,
                         progress=not args.no_progress)
        seconds = time.perf_counter() - start
        count = len(names) * len(sevs) * len(data)
        print(f"{args.out}: {len(names)} corruptions x {len(sevs)} severities x {len(data)} images "
              f"in {seconds:.1f} s ({count / seconds:.0f} img/s)")
    if args.preview:
        _preview(args, data.images, names, sevs)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the command; returns the exit status (2 for user errors)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    return common.guard(parser.prog, lambda: _run(args))


if __name__ == "__main__":
    raise SystemExit(main())
