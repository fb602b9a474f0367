"""A PNG grid of one image under every corruption (rows) and severity (columns), next to the clean image."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

__all__ = ["save_preview"]


def save_preview(
    path: str | os.PathLike[str],
    clean: np.ndarray,
    corrupted: Mapping[tuple[str, int], np.ndarray],
    *,
    corruptions: Sequence[str],
    severities: Sequence[int],
    title: str | None = None,
) -> Path:
    """Saves the grid as a PNG (written atomically) and returns its path.

    Args:
        path: Output file.
        clean: The clean image ``(32, 32, 3)`` uint8.
        corrupted: ``{(corruption, severity): image}``.
        corruptions: Row order.
        severities: Column order.
        title: Figure title.
    """
    from matplotlib.figure import Figure

    from moo_compress.fileio import atomic_open

    rows, cols = len(corruptions), len(severities) + 1
    figure = Figure(figsize=(1.1 * cols + 1.4, 1.1 * rows + 0.6), dpi=100, layout="constrained")
    axes = figure.subplots(rows, cols, squeeze=False)
    for r, name in enumerate(corruptions):
        cells = [("clean", clean)] + [(f"severity {s}", corrupted[(name, s)]) for s in severities]
        for c, (label, image) in enumerate(cells):
            ax = axes[r][c]
            ax.imshow(image, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(label, fontsize=8)
        axes[r][0].set_ylabel(name, rotation=0, ha="right", va="center", fontsize=8)
    if title:
        figure.suptitle(title, fontsize=9)
    path = Path(path)
    with atomic_open(path, "wb") as handle:
        figure.savefig(handle, format="png")
    return path
