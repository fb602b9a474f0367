"""Figures: the expected artists (points, annotations, legend entries), on every shape of run."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.text import Annotation, Text

from moo_compress.report import (
    load_run,
    plot_accuracy_vs_robustness,
    plot_corruption_heatmap,
    plot_front_3d,
    plot_hypervolume,
    plot_pairwise_fronts,
    plot_parallel_coordinates,
)
from moo_compress.report.plots.fronts import front_2d
from moo_compress.report.plots.parallel import gene_levels
from tests.report.conftest import CORRUPTIONS, LATENCY_INFO, MAX_LATENCY_MS, write_run

PLOTS = [plot_pairwise_fronts, plot_front_3d, plot_parallel_coordinates, plot_corruption_heatmap, plot_hypervolume,
         plot_accuracy_vs_robustness]


def _gid(ax: Axes, gid: str) -> list:
    return [a for a in ax.get_children() if a.get_gid() == gid]


def _legend_texts(fig: Figure) -> list[str]:
    legends = list(fig.legends) + [ax.get_legend() for ax in fig.axes if ax.get_legend()]
    return [t.get_text() for legend in legends for t in legend.get_texts()]


def _annotations(ax: Axes) -> list[str]:
    return [t.get_text() for t in ax.texts if isinstance(t, Annotation)]


@pytest.mark.parametrize("plot", PLOTS, ids=lambda p: p.__name__)
@pytest.mark.slow
def test_every_figure_renders_every_shape_of_run(scenario_run: Path, plot, tmp_path: Path) -> None:  # noqa: ANN001
    """Failed candidates, a single-point front, per-group genes, no final fidelity, mCE, no front at all."""
    out = tmp_path / "figure.png"
    fig = plot(load_run(scenario_run), out)
    assert isinstance(fig, Figure)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 5_000


def test_pairwise_fronts_mark_front_baseline_and_picks(synthetic_run: Path) -> None:
    run = load_run(synthetic_run)
    fig = plot_pairwise_fronts(run)
    axes = fig.axes
    assert len(axes) == 3
    n_front, n_other = len(run.pareto), len(run.ok) - len(run.pareto)
    for ax in axes:
        (front,) = _gid(ax, "front")
        assert len(front.get_offsets()) == n_front
        assert len(_gid(ax, "context")[0].get_offsets()) == n_other
        assert len(_gid(ax, "baseline")) == 1
        assert {c.get_gid() for c in ax.collections} >= {"pick:nbi_knee", "pick:closest_to_ideal",
                                                          "pick:most_robust_min_ratio", "pick:smallest_within_drop"}
        labels = _annotations(ax)
        assert "reference" in labels
        knee = next(r for r in run.recommendations if r["method"] == "nbi_knee")
        assert f"#{knee['row']} {knee['label']}" in labels
        assert ax.get_xlabel().endswith("is better") or "is better" in ax.get_xlabel()
        assert "(" in ax.get_ylabel() and "is better" in ax.get_ylabel()  # a unit and the direction
    legend = _legend_texts(fig)
    assert "reference: the uncompressed model after the same recovery" in legend
    assert any(t.startswith("Pareto set (final fidelity") for t in legend)
    assert any(t.startswith("Knee: farthest") for t in legend)


def test_pairwise_annotations_do_not_overlap(tmp_path: Path) -> None:
    run = load_run(write_run(tmp_path / "r", n_plans=22, seed=3))
    fig = plot_pairwise_fronts(run)
    renderer = fig.canvas.get_renderer()
    for ax in fig.axes:
        boxes = [t.get_window_extent(renderer) for t in ax.texts if isinstance(t, Annotation)]
        assert len(boxes) >= 3
        for a, b in itertools.combinations(boxes, 2):
            assert not a.overlaps(b), (a, b)


def test_mce_axis_is_reversed_so_better_is_up(tmp_path: Path) -> None:
    fig = plot_pairwise_fronts(load_run(write_run(tmp_path / "r", robustness="mce")))
    ax = fig.axes[0]  # clean accuracy (x) against mCE (y)
    assert ax.yaxis_inverted() and "lower is better" in ax.get_ylabel()


def test_failed_candidates_are_left_out_and_counted(tmp_path: Path) -> None:
    run = load_run(write_run(tmp_path / "r", failed=2))
    fig = plot_pairwise_fronts(run)
    assert "2 failed candidates not shown" in fig.get_suptitle()
    shown = sum(len(c.get_offsets()) for c in _gid(fig.axes[0], "front") + _gid(fig.axes[0], "context"))
    assert shown == len(run.ok)


def test_front_3d_numbers_every_member(synthetic_run: Path) -> None:
    run = load_run(synthetic_run)
    fig = plot_front_3d(run)
    ax = fig.axes[0]
    assert ax.name == "3d"
    assert {t.get_text().strip() for t in ax.texts} >= {f"#{i}" for i in range(len(run.pareto))}
    assert len(_gid(ax, "front")) == 1 and len(_gid(ax, "baseline")) == 1
    assert "is better" in ax.get_zlabel() and "%" in ax.get_zlabel()


def test_parallel_coordinates_draw_one_line_per_plan(synthetic_run: Path) -> None:
    run = load_run(synthetic_run)
    fig = plot_parallel_coordinates(run)
    ax = fig.axes[0]
    assert len(_gid(ax, "front")) == len(run.pareto)
    assert len(_gid(ax, "context")) == len(run.ok) - len(run.pareto)
    assert len(_gid(ax, "baseline")) == 1
    n_axes = len(run.gene_columns) + 3
    assert len(ax.get_xticks()) == n_axes
    assert any("stronger" in t.get_text() for t in ax.get_xticklabels())
    assert any("better" in t.get_text() for t in ax.get_xticklabels())
    assert any(t.startswith(f"#{r['row']}") for r in run.recommendations if r["row"] is not None
               for t in _legend_texts(fig))


def test_parallel_coordinates_of_a_per_group_run_have_an_axis_per_gene(tmp_path: Path) -> None:
    run = load_run(write_run(tmp_path / "r", per_group=True))
    ax = plot_parallel_coordinates(run).axes[0]
    assert len(run.gene_columns) == 15 and len(ax.get_xticks()) == 18


def test_heatmap_shows_change_against_baseline(synthetic_run: Path) -> None:
    run = load_run(synthetic_run)
    fig = plot_corruption_heatmap(run)
    family_ax, corruption_ax = fig.axes[:2]
    (families,) = family_ax.images
    (corruptions,) = corruption_ax.images
    assert families.get_array().shape == (len(run.pareto), 4)
    assert corruptions.get_array().shape == (len(run.pareto), len(CORRUPTIONS))
    expected = run.pareto["final/family/noise"].iloc[0] - run.baseline["family/noise"]
    assert families.get_array()[0, 0] == pytest.approx(expected)
    assert f"{expected:+.1f}" in [t.get_text() for t in family_ax.texts]
    assert "reference" in family_ax.get_xticklabels()[0].get_text()
    assert "higher is better" in fig.axes[-1].get_ylabel()  # the colour bar


def test_accuracy_vs_robustness_colours_by_ratio(synthetic_run: Path) -> None:
    run = load_run(synthetic_run)
    fig = plot_accuracy_vs_robustness(run)
    ax = fig.axes[0]
    (front,) = _gid(ax, "front")
    np.testing.assert_allclose(front.get_array(), run.pareto["final/compression_ratio"])
    assert "compression ratio" in fig.axes[1].get_ylabel()  # the colour bar
    assert "reference" in _annotations(ax)
    assert "reference: the uncompressed model after the same recovery" in _legend_texts(fig)


def test_hypervolume_plots_history(synthetic_run: Path) -> None:
    run = load_run(synthetic_run)
    ax = plot_hypervolume(run).axes[0]
    (line,) = _gid(ax, "hypervolume")
    np.testing.assert_allclose(line.get_ydata(), run.history["hypervolume"])
    assert "higher is better" in ax.get_ylabel() and ax.get_legend() is not None


def test_front_2d_keeps_the_non_dominated_points() -> None:
    x, y = np.array([1.0, 2.0, 3.0, 2.5]), np.array([3.0, 2.0, 1.0, 1.5])
    assert front_2d(x, y).tolist() == [0, 1, 3, 2]
    assert front_2d(x, y, y_higher=False).tolist() == [2]


def test_gene_levels_go_from_weakest_to_strongest() -> None:
    assert gene_levels("sparsity", ["0.5", "0", "0.8"]) == ["0", "0.5", "0.8"]
    assert gene_levels("clusters", ["8", "off", "16"]) == ["off", "16", "8"]
    assert gene_levels("weight_bits", ["4", "off", "8"]) == ["off", "8", "4"]


def _all_texts(fig: Figure) -> list[str]:
    """Every text of a figure: titles, axis and tick labels, legends, colour bars, annotations."""
    return [t.get_text() for t in fig.findobj(Text)]


LATENCY_LABEL = "latency, batch 1 (ms) — lower is better"


@pytest.mark.slow
def test_pairwise_fronts_add_a_row_of_latency_panels(latency_run: Path) -> None:
    run = load_run(latency_run)
    fig = plot_pairwise_fronts(run)
    axes = fig.axes
    assert len(axes) == 6
    assert [ax.get_xlabel() for ax in axes[3:]] == [f"{LATENCY_LABEL} (reversed)"] * 3  # faster to the right
    assert [ax.get_ylabel().split(" — ")[0] for ax in axes[3:]] == [
        "clean accuracy (%)", "mean corruption accuracy (%)", "compression ratio (×, log scale)"]
    for ax in axes[3:]:
        assert ax.xaxis_inverted()
        (front,) = _gid(ax, "front")
        np.testing.assert_allclose(front.get_offsets()[:, 0], run.pareto["final/latency_ms"])
        (star,) = _gid(ax, "baseline")
        assert star.get_offsets()[0, 0] == pytest.approx(LATENCY_INFO["reference_ms"])
        assert _gid(ax, "intervals")  # the interquartile ranges as bars
    assert "latency: interquartile range of the timed batch-1 runs (this machine)" in _legend_texts(fig)


def test_front_3d_colours_plans_by_latency(latency_run: Path) -> None:
    run = load_run(latency_run)
    fig = plot_front_3d(run)
    (front,) = _gid(fig.axes[0], "front")
    np.testing.assert_allclose(front.get_array(), run.pareto["final/latency_ms"])
    assert fig.axes[1].get_ylabel() == LATENCY_LABEL  # the colour bar
    assert "four objectives" in fig.get_suptitle()


def test_parallel_coordinates_gain_a_latency_axis(latency_run: Path) -> None:
    run = load_run(latency_run)
    ax = plot_parallel_coordinates(run).axes[0]
    assert len(ax.get_xticks()) == len(run.gene_columns) + 4
    assert ax.get_xticklabels()[-1].get_text().startswith("latency, batch 1 (ms)")
    last = np.array([line.get_ydata()[-1] for line in _gid(ax, "front")])
    latency = run.pareto["final/latency_ms"].to_numpy()
    assert np.argmax(last) == np.argmin(latency) and np.argmin(last) == np.argmax(latency)  # faster is higher


def test_accuracy_vs_robustness_adds_an_accuracy_latency_panel(tmp_path: Path) -> None:
    run = load_run(write_run(tmp_path / "r", latency="constraint"))
    fig = plot_accuracy_vs_robustness(run)
    robustness, latency = fig.axes[:2]
    assert robustness.get_xlabel().startswith("clean accuracy")
    assert latency.get_xlabel() == f"{LATENCY_LABEL} (reversed)" and latency.get_ylabel().startswith("clean accuracy")
    (front,) = _gid(latency, "front")
    np.testing.assert_allclose(front.get_offsets()[:, 0], run.pareto["final/latency_ms"])
    (limit,) = _gid(latency, "latency-limit")
    assert limit.get_xdata()[0] == MAX_LATENCY_MS


def test_a_latency_constraint_alone_adds_no_front_panel(tmp_path: Path) -> None:
    run = load_run(write_run(tmp_path / "r", latency="constraint"))
    assert len(plot_pairwise_fronts(run).axes) == 3
    assert len(plot_parallel_coordinates(run).axes[0].get_xticks()) == len(run.gene_columns) + 3


@pytest.mark.parametrize("plot", PLOTS, ids=lambda p: p.__name__)
def test_figures_of_a_run_without_latency_never_mention_it(synthetic_run: Path, plot) -> None:  # noqa: ANN001
    texts = _all_texts(plot(load_run(synthetic_run)))
    assert texts and not [t for t in texts if "latency" in t.lower()]
