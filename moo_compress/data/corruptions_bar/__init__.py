"""CIFAR-10-C-bar: ten held-out natural corruptions (Mintun et al., NeurIPS 2021), vectorised over batches.

>>> from moo_compress.data.corruptions_bar import corrupt_bar, list_bar_corruptions
>>> rippled = corrupt_bar(images, "ripple", 3, seed=0)   # uint8 (N, 32, 32, 3) in and out
>>> list_bar_corruptions("*noise*")
['brownish_noise']

The levels of the five severities are in :mod:`~moo_compress.data.corruptions_bar.params`; the
corruptions live in ``noise``, ``occlusion``, ``sparkles``, ``warps`` and ``optics``. Randomness is drawn
per block of images exactly as for :mod:`moo_compress.data.corruptions`.
"""

from moo_compress.data.corruptions_bar.api import (
    BLOCK_SIZE,
    check_bar_images,
    corrupt_bar,
    corrupt_bar_into,
    list_bar_corruptions,
)
from moo_compress.data.corruptions_bar.params import (
    BAR_CORRUPTIONS,
    GENERATOR_VERSION,
    PARAMS,
    SOURCE,
    BarCorruptionSpec,
    bar_params_fingerprint,
)

__all__ = [
    "BAR_CORRUPTIONS",
    "BLOCK_SIZE",
    "BarCorruptionSpec",
    "GENERATOR_VERSION",
    "PARAMS",
    "SOURCE",
    "bar_params_fingerprint",
    "check_bar_images",
    "corrupt_bar",
    "corrupt_bar_into",
    "list_bar_corruptions",
]
