"""``python -m moo_compress.search``: see :mod:`moo_compress.cli.search`."""

from moo_compress.cli.search import main

if __name__ == "__main__":
    raise SystemExit(main())
