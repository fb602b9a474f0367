"""Occlusions: checkerboard_cutout (grey squares of a rotated checkerboard) and lines (grey strokes)."""

from __future__ import annotations

import numpy as np

from moo_compress.data.corruptions_bar.base import Params, register
from moo_compress.data.corruptions_bar.params import IMAGE_SIZE, scaled
from moo_compress.data.corruptions_bar.raster import line_aa_many

__all__ = ["GREY", "MAX_CELLS", "line_count"]

GREY = 128
# Squares are at least 0.1 x 32 = 3.2 px, so the reference's grid has at most 4 x 32 // 3.2 = 40 rows.
MAX_CELLS = 40


def _sample_checkerboard(rng: np.random.Generator, count: int, level: float) -> Params:
    return {
        "angle": rng.uniform(0, 2 * np.pi, size=count),
        "scale": np.maximum(rng.uniform(0.1, 0.25, size=count) * IMAGE_SIZE, 1),
        "cells": rng.uniform(size=(count, MAX_CELLS, MAX_CELLS)),  # top-left (G, G) used
    }


def _checkerboard_cutout(images: np.ndarray, params: Params, level: float) -> np.ndarray:
    """Greys the squares of one colour of a rotated checkerboard whose cell is drawn below ``fraction``.

    Pixel ``[y, x]`` has board coordinates ``n = R(angle) [y, x] / scale``; it is cut out when
    ``int(n_y % 2) == int(n_x % 2)`` and cell ``(int(n_y), int(n_x))`` of a ``G x G`` grid of uniforms
    (``G = 4 * 32 // scale``) is below ``fraction``. As in the reference, ``int`` truncates toward zero
    and negative indices wrap around the grid.
    """
    fraction = scaled(level, 1.0)
    angle, scale = params["angle"][:, None, None], params["scale"][:, None, None]
    y, x = np.mgrid[0:IMAGE_SIZE, 0:IMAGE_SIZE]
    ny = (np.cos(angle) * y + np.sin(angle) * x) / scale
    nx = (-np.sin(angle) * y + np.cos(angle) * x) / scale
    other_colour = np.mod(ny, 2).astype(np.int64) != np.mod(nx, 2).astype(np.int64)
    size = np.floor_divide(4 * IMAGE_SIZE, params["scale"]).astype(np.int64)[:, None, None]
    row, col = np.mod(ny.astype(np.int64), size), np.mod(nx.astype(np.int64), size)
    cell = np.take_along_axis(params["cells"].reshape(len(images), -1),
                              (row * MAX_CELLS + col).reshape(len(images), -1), axis=1)
    keep = other_colour | ~(cell.reshape(row.shape) < fraction)
    return np.where(keep[..., None], images, np.uint8(GREY))


def line_count(level: float) -> int:
    """How many lines a level draws: ``int(32 * level / 10)``."""
    return int(scaled(level, 1.0) * IMAGE_SIZE)


def _sample_lines(rng: np.random.Generator, count: int, level: float) -> Params:
    return {
        "angle": rng.uniform(0.0, 2 * np.pi, size=count),
        "variation": rng.uniform(0.1, 1.0, size=count),
        "uniforms": rng.uniform(size=(count, line_count(level), 3)),  # row, column, angle of each line
    }


def _lines(images: np.ndarray, params: Params, level: float) -> np.ndarray:
    """Draws grey anti-aliased lines one after another, each blended over the truncated result so far.

    A line is centred at ``32 u`` (row and column), has half-length 32 and the angle ``angle + 2 pi
    variation (u - 0.5)``; a pixel of coverage ``v`` becomes ``(1 - v) p + 128 v``, truncated to uint8.
    """
    half = 1.0 * IMAGE_SIZE
    u = params["uniforms"]
    count, lines = u.shape[:2]
    row, col = IMAGE_SIZE * u[..., 0], IMAGE_SIZE * u[..., 1]
    angle = params["angle"][:, None] + 2 * np.pi * params["variation"][:, None] * (u[..., 2] - 0.5)
    dr, dc = np.cos(angle) * half, np.sin(angle) * half
    line, rows, cols, coverage = line_aa_many((row - dr).astype(np.int64), (col - dc).astype(np.int64),
                                              (row + dr).astype(np.int64), (col + dc).astype(np.int64))
    inside = (rows >= 0) & (rows < IMAGE_SIZE) & (cols >= 0) & (cols < IMAGE_SIZE)
    line, rows, cols, coverage = line[inside], rows[inside], cols[inside], coverage[inside]
    image, order = np.divmod(line, lines)
    out = images.copy()
    for k in range(lines):  # later lines blend over earlier ones; pixels of one line all read first
        mine = order == k
        where = (image[mine], rows[mine], cols[mine])
        v = coverage[mine][:, None]
        out[where] = (1.0 - v) * out[where].astype(np.float32) + v * GREY
    return out


register("checkerboard_cutout", sample=_sample_checkerboard, apply=_checkerboard_cutout)
register("lines", sample=_sample_lines, apply=_lines)
