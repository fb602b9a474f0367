"""``python -m moo_compress.report``: see :mod:`moo_compress.cli.report`."""

from moo_compress.cli.report import main

if __name__ == "__main__":
    raise SystemExit(main())
