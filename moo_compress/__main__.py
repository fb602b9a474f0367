"""``python -m moo_compress <command> ...``: see :mod:`moo_compress.cli`."""

from moo_compress.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
