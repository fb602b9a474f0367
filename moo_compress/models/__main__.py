"""``python -m moo_compress.models``: see :mod:`moo_compress.cli.models`."""

from moo_compress.cli.models import main

if __name__ == "__main__":
    raise SystemExit(main())
