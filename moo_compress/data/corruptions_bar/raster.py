"""Anti-aliased line rasterisation for many lines at once.

The algorithm is Zingl's anti-aliased Bresenham line ("A Rasterizing Algorithm for Drawing Curves",
2012), as ``skimage.draw.line_aa`` implements it: one pixel per step with coverage ``1 - |e| / ed``, plus
the neighbour across the line when it is covered. Here every line advances one step per loop iteration
in lockstep, so thousands of lines cost one short loop of array operations.
"""

from __future__ import annotations

import numpy as np

__all__ = ["line_aa_many"]


def line_aa_many(r0: np.ndarray, c0: np.ndarray, r1: np.ndarray, c1: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The pixels of many anti-aliased lines from ``(r0, c0)`` to ``(r1, c1)`` (integer arrays, any size).

    Returns:
        ``(line, rows, cols, coverage)``: for each pixel the index of its line (into the flattened
        inputs), its position (possibly outside any image) and its coverage in (0, 1]. The pixels of
        one line come in the order ``skimage.draw.line_aa`` lists them.
    """
    r = np.ravel(r0).astype(np.int64)
    c = np.ravel(c0).astype(np.int64)
    r_end, c_end = np.ravel(r1).astype(np.int64), np.ravel(c1).astype(np.int64)
    dc, dr = np.abs(c_end - c), np.abs(r_end - r)
    sc = np.where(c < c_end, 1, -1)
    sr = np.where(r < r_end, 1, -1)
    err = (dc - dr).astype(np.float64)
    ed = np.where(dc + dr == 0, 1.0, np.sqrt((dc * dc + dr * dr).astype(np.float64)))
    ids = np.arange(r.size)
    active = np.ones(r.size, dtype=bool)
    pieces: list[tuple[np.ndarray, ...]] = []

    def emit(mask: np.ndarray, rows: np.ndarray, cols: np.ndarray, error: np.ndarray) -> None:
        pieces.append((ids[mask], rows[mask], cols[mask], 1.0 - np.abs(error[mask]) / ed[mask]))

    while active.any():
        emit(active, r, c, err - dc + dr)
        e2, c_before = err.copy(), c.copy()
        step_c = active & (2 * e2 >= -dc)
        done = step_c & (c == c_end)
        step_c &= ~done
        emit(step_c & (e2 + dr < ed), r + sr, c, e2 + dr)
        err = np.where(step_c, err - dr, err)
        c = np.where(step_c, c + sc, c)
        step_r = active & ~done & (2 * e2 <= dr)
        done_r = step_r & (r == r_end)
        step_r &= ~done_r
        emit(step_r & (dc - e2 < ed), r, c_before + sc, dc - e2)
        err = np.where(step_r, err + dc, err)
        r = np.where(step_r, r + sr, r)
        active &= ~(done | done_r)

    line, rows, cols, coverage = (np.concatenate(parts) for parts in zip(*pieces, strict=True))
    order = np.argsort(line, kind="stable")  # group by line, keeping each line's drawing order
    return line[order], rows[order], cols[order], coverage[order]
