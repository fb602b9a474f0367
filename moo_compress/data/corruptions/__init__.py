"""The 19 CIFAR-C natural corruptions (Hendrycks & Dietterich, ICLR 2019), vectorised over batches.

>>> from moo_compress.data.corruptions import corrupt, list_corruptions
>>> noisy = corrupt(images, "gaussian_noise", 3, seed=0)   # uint8 (N, 32, 32, 3) in and out
>>> list_corruptions("blur")
['defocus_blur', 'glass_blur', 'motion_blur', 'zoom_blur', 'gaussian_blur']

The parameters (CIFAR ones, severities 1..5) are in :mod:`~moo_compress.data.corruptions.params`;
each family lives in its own module (``noise``, ``blur``, ``weather``, ``digital``).
"""

from moo_compress.data.corruptions.api import (
    BLOCK_SIZE,
    check_severities,
    check_severity,
    corrupt,
    corrupt_into,
    list_corruptions,
    resolve_corruptions,
)
from moo_compress.data.corruptions.params import (
    ALL_CORRUPTIONS,
    BENCHMARK_CORRUPTIONS,
    CORRUPTION_FAMILIES,
    EXTRA_CORRUPTIONS,
    FAMILIES,
    GENERATOR_VERSION,
    PARAMS,
    SEVERITIES,
    CorruptionSpec,
    params_fingerprint,
)

__all__ = [
    "ALL_CORRUPTIONS",
    "BENCHMARK_CORRUPTIONS",
    "BLOCK_SIZE",
    "CORRUPTION_FAMILIES",
    "CorruptionSpec",
    "EXTRA_CORRUPTIONS",
    "FAMILIES",
    "GENERATOR_VERSION",
    "PARAMS",
    "SEVERITIES",
    "check_severities",
    "check_severity",
    "corrupt",
    "corrupt_into",
    "list_corruptions",
    "params_fingerprint",
    "resolve_corruptions",
]
