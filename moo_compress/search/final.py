"""The stages after screening, by their former home (each now a module of its own):

- :mod:`~moo_compress.search.selection`: contenders within the screening front's noise, and selection on
  more search-split images;
- :mod:`~moo_compress.search.recommend`: knee points and user picks;
- :mod:`~moo_compress.search.reporting`: the report split's numbers, intervals and flags;
- :mod:`~moo_compress.search.heldout`: robustness on corruptions the search never saw;
- :mod:`~moo_compress.search.deployment`: the recommendations as ONNX files, checked in ONNX Runtime.

This module re-exports their public names for code written against it.
"""

from __future__ import annotations

from moo_compress.runfolder import METRIC_COLUMNS as METRICS
from moo_compress.search.deployment import ONNX_TOLERANCE, deployed, export_and_check, plan_file_name
from moo_compress.search.heldout import HELD_OUT, held_out, held_out_corruptions, rank_reversals
from moo_compress.search.pareto import pareto_mask
from moo_compress.search.recommend import recommend
from moo_compress.search.reporting import recovery_warning, report
from moo_compress.search.selection import contenders, select

__all__ = ["contenders", "select", "recommend", "report", "held_out", "held_out_corruptions", "rank_reversals",
           "deployed", "export_and_check", "plan_file_name", "ONNX_TOLERANCE", "HELD_OUT",
           "METRICS", "pareto_mask", "recovery_warning"]
