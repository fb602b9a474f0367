"""``python -m moo_compress.models [PATTERN]``: list architectures with parameter counts and defaults."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from moo_compress.models import create_model, list_models, model_defaults

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Prints one line per registered architecture matching the optional glob pattern."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in ("-h", "--help"):
        print("usage: python -m moo_compress.models [PATTERN]   (glob, e.g. 'resnet*')")
        return 0
    for name in list_models(argv[0] if argv else None):
        d = model_defaults(name)
        params = sum(p.numel() for p in create_model(name).parameters())
        pretrained = ", ".join(d.pretrained) or "-"
        print(f"{name:<12} {d.family:<13} {params / 1e6:7.2f}M params  groups: {','.join(d.layer_groups)}  "
              f"published weights: {pretrained}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
