"""``python -m moo_compress.train``: see :mod:`moo_compress.cli.train`."""

from moo_compress.cli.train import main

if __name__ == "__main__":
    raise SystemExit(main())
