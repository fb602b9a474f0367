"""``python -m moo_compress.corrupt``: corrupt a test set (CIFAR-10-C / CIFAR-100-C, or any ImageFolder) in the
release layout, with the parameter set of its image size (or the one named).

Examples:
    python -m moo_compress.corrupt --dataset cifar10 --out /data/CIFAR-10-C
    python -m moo_compress.corrupt --corruptions noise fog --severities 3 5 --limit 1000 --out /tmp/c10c
    python -m moo_compress.corrupt --preview grid.png                      # one image, every corruption
    python -m moo_compress.corrupt --download-release --out /data          # the official archive (2.9 GB)
    python -m moo_compress.corrupt --dataset imagefolder --data-root photos --input-size 224 --limit 100 \
        --preview grid.png                                                 # ImageNet-C numbers at 224 pixels
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence

import numpy as np

from moo_compress.cli import common
from moo_compress.data import load_dataset, stratified_indices
from moo_compress.data.cifar_c import download_release, generate_release, open_release
from moo_compress.data.corruption_preview import save_preview
from moo_compress.data.corruptions import (
    SELECTION,
    check_severities,
    corrupt,
    get_param_set,
    list_param_sets,
    resolve_corruptions,
    resolve_param_set,
)
from moo_compress.data.resize import Sizing
from moo_compress.errors import ConfigError

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The command's argument parser."""
    parser = common.ArgumentParser(
        prog="python -m moo_compress.corrupt",
        description="Generate the 19 corruptions of a test set in the CIFAR-C release layout (<corruption>.npy "
                    "with severity blocks, labels.npy), or download the official CIFAR-C release.",
    )
    common.add_data_args(parser)
    bounds = ", ".join(f"{name} up to {bound} px" if bound else f"{name} above" for bound, name in SELECTION)
    parser.add_argument("--corruption-params", metavar="NAME",
                        help=f"parameter set: {', '.join(list_param_sets())}; None chooses by the images' shorter "
                             f"side: {bounds}")
    parser.add_argument("--input-size", type=int, metavar="PIXELS", help="for an ImageFolder of photographs of "
                        "several sizes: resize (shorter side to PIXELS / 0.875) and centre-crop them to PIXELS "
                        "square first, as a model of that input evaluates them")
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


def _preview(args: argparse.Namespace, images: np.ndarray, names: tuple[str, ...], sevs: tuple[int, ...],
             params: str) -> None:
    index = args.preview_index
    if not 0 <= index < len(images):
        raise ConfigError(f"--preview-index must be in [0, {len(images)}), got {index}")
    if args.out:  # show exactly what was written
        release = open_release(args.out, corruptions=names)
        cells = {(c, s): release.images(c, s)[index] for c in names for s in sevs}
    else:
        one = images[index: index + 1]
        cells = {(c, s): corrupt(one, c, s, seed=args.seed, params=params)[0] for c in names for s in sevs}
    save_preview(args.preview, images[index], cells, corruptions=names, severities=sevs,
                 title=f"{args.dataset} test image {index} ({params} parameters)")
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
    if args.corruption_params is not None:
        get_param_set(args.corruption_params)  # an unknown name fails before the data is read
    if args.input_size is not None and args.input_size < 1:
        raise ConfigError(f"--input-size must be a positive number of pixels, got {args.input_size}")
    sizing = None if args.input_size is None else Sizing(size=(args.input_size, args.input_size))
    data = load_dataset(args.dataset, "test", data_root=args.data_root, sizing=sizing)
    if args.limit is not None:
        if args.limit < data.num_classes:
            raise ConfigError(f"--limit must be at least the number of classes ({data.num_classes}), got {args.limit}")
        data = data.subset(stratified_indices(data.labels, args.limit // data.num_classes, seed=args.seed))
    height, width = data.images.shape[1:3]
    params = resolve_param_set(args.corruption_params, height, width).name
    if args.out:
        start = time.perf_counter()
        generate_release(data, args.out, corruptions=names, severities=sevs, seed=args.seed, workers=args.workers,
                         progress=not args.no_progress, params=params)
        seconds = time.perf_counter() - start
        count = len(names) * len(sevs) * len(data)
        print(f"{args.out}: {len(names)} corruptions x {len(sevs)} severities x {len(data)} images of "
              f"{height} x {width} ({params} parameters) in {seconds:.1f} s ({count / seconds:.0f} img/s)")
    if args.preview:
        _preview(args, data.images, names, sevs, params)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the command; returns the exit status (2 for user errors)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    return common.guard(parser.prog, lambda: _run(args))


if __name__ == "__main__":
    raise SystemExit(main())
