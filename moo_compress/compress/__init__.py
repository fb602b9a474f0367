"""The compression engine: pruning -> clustering -> quantization, composed, with honest size accounting."""

from moo_compress.compress.config import (
    WEIGHT_BITS,
    ClusterConfig,
    CompressionPlan,
    LayerGroup,
    PruneConfig,
    QuantizeConfig,
    RecoveryConfig,
)
from moo_compress.compress.targets import LayerFilter, candidate_layers, is_compressible

__all__ = [
    "WEIGHT_BITS",
    "ClusterConfig",
    "CompressionPlan",
    "LayerFilter",
    "LayerGroup",
    "PruneConfig",
    "QuantizeConfig",
    "RecoveryConfig",
    "candidate_layers",
    "is_compressible",
]
