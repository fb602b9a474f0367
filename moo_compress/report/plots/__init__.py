"""Figures of a search run, drawn from its files alone.

Every axis label carries its unit and the direction of better; the baseline and the recommended
plans are marked wherever plans are drawn. Each function takes a :class:`~moo_compress.report.RunData`
and an optional PNG path and returns the :class:`~matplotlib.figure.Figure` (a notebook shows it).
"""

from moo_compress.report.plots.convergence import plot_hypervolume
from moo_compress.report.plots.fronts import plot_front_3d, plot_pairwise_fronts
from moo_compress.report.plots.heatmap import plot_corruption_heatmap
from moo_compress.report.plots.heldout import plot_held_out
from moo_compress.report.plots.parallel import plot_parallel_coordinates
from moo_compress.report.plots.scatter import plot_accuracy_vs_robustness
from moo_compress.report.plots.style import LABELS

__all__ = [
    "LABELS",
    "plot_pairwise_fronts",
    "plot_front_3d",
    "plot_parallel_coordinates",
    "plot_corruption_heatmap",
    "plot_hypervolume",
    "plot_accuracy_vs_robustness",
    "plot_held_out",
]
