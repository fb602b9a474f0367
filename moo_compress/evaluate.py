"""``python -m moo_compress.evaluate``: see :mod:`moo_compress.cli.evaluate`."""

from moo_compress.cli.evaluate import main

if __name__ == "__main__":
    raise SystemExit(main())
