"""The command-line entry points, one module each; ``moo-compress <command> ...`` (or ``python -m
moo_compress <command>``) dispatches to them.

Each command is also ``python -m moo_compress.<command>`` (``search``, ``evaluate``, ``report``,
``models``, ``corrupt``, ``train``): those modules only call the ``main`` here. Every ``main`` takes
``argv`` and returns an exit status; user errors are one line on stderr with status 2
(:mod:`moo_compress.cli.common`).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

__all__ = ["COMMANDS", "main"]

# command -> (module with main(argv), one-line description)
COMMANDS: dict[str, tuple[str, str]] = {
    "train": ("moo_compress.cli.train", "train a model on CIFAR with a standard recipe"),
    "search": ("moo_compress.cli.search", "search compression plans (NSGA-II, three objectives)"),
    "evaluate": ("moo_compress.cli.evaluate", "evaluate a model, or re-evaluate plans of a search run"),
    "report": ("moo_compress.cli.report", "regenerate the summary and figures of a search run"),
    "models": ("moo_compress.cli.models", "list the registered architectures"),
    "corrupt": ("moo_compress.cli.corrupt", "generate CIFAR-10-C / CIFAR-100-C corruptions (or download the release)"),
}


def _usage() -> str:
    width = max(map(len, COMMANDS))
    lines = [f"  {name:<{width}}  {desc}" for name, (_, desc) in COMMANDS.items()]
    return "usage: moo-compress <command> [options]\n\ncommands:\n" + "\n".join(lines) + (
        "\n\n'moo-compress <command> --help' describes a command's options."
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Dispatches to the command's ``main``; returns its exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        import difflib

        close = difflib.get_close_matches(command, list(COMMANDS), n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        print(f"moo-compress: error: unknown command {command!r}{hint} (valid: {', '.join(COMMANDS)})", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[command][0])
    return int(module.main(rest))


if __name__ == "__main__":
    raise SystemExit(main())
