"""``python -m moo_compress.report [RUN]``: regenerate ``summary.md`` and every figure of a run folder."""

from __future__ import annotations

from collections.abc import Sequence

from moo_compress.cli import common

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Renders the run folder named on the command line; prints the files written."""
    parser = common.ArgumentParser(prog="python -m moo_compress.report",
                                      description="Regenerate summary.md and every figure of a search run folder "
                                      "(reads its files; recomputes nothing).")
    parser.add_argument("run", nargs="?", help="run folder (default: $MOO_COMPRESS_RUN, else the most recent "
                        "finished run under outputs/)")
    args = parser.parse_args(argv)

    def run() -> int:
        from moo_compress.report import render_run, resolve_run

        for path in render_run(resolve_run(args.run)):
            print(path)
        return 0

    return common.guard(parser.prog, run)


if __name__ == "__main__":
    raise SystemExit(main())
