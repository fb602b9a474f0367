"""The 19 natural corruptions of CIFAR-C / Tiny-ImageNet-C / ImageNet-C (Hendrycks & Dietterich, ICLR 2019),
vectorised over batches.

>>> from moo_compress.data.corruptions import corrupt, list_corruptions
>>> noisy = corrupt(images, "gaussian_noise", 3, seed=0)   # uint8 (N, H, W, 3) in and out
>>> noisy = corrupt(images, "fog", 5, params="imagenet")    # the ImageNet-C numbers, whatever the size
>>> list_corruptions("blur")
['defocus_blur', 'glass_blur', 'motion_blur', 'zoom_blur', 'gaussian_blur']

The parameters (severities 1..5) come in three sets, one per recipe and image size: ``cifar`` (32 pixels,
:mod:`~moo_compress.data.corruptions.params`), ``tinyimagenet`` (64) and ``imagenet`` (224); the set
follows the images' size unless named (:mod:`~moo_compress.data.corruptions.param_sets`). Each family
lives in its own module (``noise``, ``blur``, ``weather``, ``digital``).
"""

from moo_compress.data.corruptions.api import (
    BLOCK_SIZE,
    block_size,
    check_severities,
    check_severity,
    corrupt,
    corrupt_into,
    list_corruptions,
    resolve_corruptions,
)
from moo_compress.data.corruptions.param_sets import (
    DEFAULT_PARAM_SET,
    PARAM_SETS,
    SELECTION,
    ParamSet,
    get_param_set,
    list_param_sets,
    param_set_for_size,
    resolve_param_set,
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
    "DEFAULT_PARAM_SET",
    "EXTRA_CORRUPTIONS",
    "FAMILIES",
    "GENERATOR_VERSION",
    "PARAMS",
    "PARAM_SETS",
    "ParamSet",
    "SELECTION",
    "SEVERITIES",
    "block_size",
    "check_severities",
    "check_severity",
    "corrupt",
    "corrupt_into",
    "get_param_set",
    "list_corruptions",
    "list_param_sets",
    "param_set_for_size",
    "params_fingerprint",
    "resolve_corruptions",
    "resolve_param_set",
]
