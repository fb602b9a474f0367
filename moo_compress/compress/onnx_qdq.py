"""Moved to :mod:`moo_compress.deploy.qdq`; this path re-exports its public names for old imports."""

from moo_compress.deploy.qdq import (
    QdqLayer,
    WeightCodes,
    inherited_grids,
    insert_qdq,
    planned_tensors,
    round_tensors,
    tensors_to_round,
)

__all__ = ["WeightCodes", "QdqLayer", "insert_qdq", "tensors_to_round", "planned_tensors", "inherited_grids",
           "round_tensors"]
