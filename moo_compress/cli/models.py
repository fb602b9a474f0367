"""``python -m moo_compress.models [PATTERN]``: list architectures with parameter counts and defaults.

``python -m moo_compress.models --groups MODEL``: the layer groups of a registered architecture or a
model source (``path/to/file.py:factory``, ``torchvision:resnet18`` ...), one line per group, as the
per-group search spaces use them.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from moo_compress.cli import common
from moo_compress.models import create_model, list_models, model_defaults

__all__ = ["main"]

_USAGE = "usage: python -m moo_compress.models [PATTERN] | --groups MODEL   (PATTERN: a glob, e.g. 'resnet*')"


def _groups(name: str) -> int:
    defaults = model_defaults(name)
    print(f"{name}: {len(defaults.layer_groups)} layer groups (input {defaults.input_size})")
    for group, patterns in defaults.layer_groups.items():
        shown = ", ".join(patterns[:6]) + (f", ... ({len(patterns)} in all)" if len(patterns) > 6 else "")
        print(f"  {group:<10} {shown}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Lists architectures matching the optional glob, or prints a model's layer groups."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in ("-h", "--help"):
        print(_USAGE)
        return 0
    if argv and argv[0] == "--groups":
        if len(argv) != 2:
            print(f"python -m moo_compress.models: error: --groups takes one model ({_USAGE})", file=sys.stderr)
            return 2
        return common.guard("python -m moo_compress.models", lambda: _groups(argv[1]))
    for name in list_models(argv[0] if argv else None):
        d = model_defaults(name)
        params = sum(p.numel() for p in create_model(name).parameters())
        pretrained = ", ".join(d.pretrained) or "-"
        print(f"{name:<12} {d.family:<13} {params / 1e6:7.2f}M params  groups: {','.join(d.layer_groups)}  "
              f"published weights: {pretrained}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
