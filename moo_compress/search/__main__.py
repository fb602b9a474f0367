"""``python -m moo_compress.search``: see :mod:`moo_compress.search.cli`."""

from moo_compress.search.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
