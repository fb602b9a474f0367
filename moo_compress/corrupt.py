"""``python -m moo_compress.corrupt``: see :mod:`moo_compress.cli.corrupt`."""

from moo_compress.cli.corrupt import main

if __name__ == "__main__":
    raise SystemExit(main())
