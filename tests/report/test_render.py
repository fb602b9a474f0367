"""``render_run`` and ``python -m moo_compress.report``: summary.md and every figure from the run's files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from moo_compress.cli.report import main
from moo_compress.report import FIGURES, RUN_ENV, load_run, render_run, summary_markdown
from tests.report.conftest import write_run


@pytest.mark.slow
def test_render_run_writes_summary_and_every_figure(scenario_run: Path) -> None:
    written = render_run(scenario_run)
    assert [p.name for p in written] == [f.file for f in FIGURES] + ["summary.md"]
    for path in written:
        assert path.stat().st_size > 0
    summary = (scenario_run / "summary.md").read_text()
    for spec in FIGURES:  # every figure is embedded with its caption
        assert f"![{spec.caption}]({spec.file})" in summary


def test_summary_lists_failures_and_recommendations(tmp_path: Path) -> None:
    run = load_run(write_run(tmp_path / "r", failed=2))
    text = summary_markdown(run, FIGURES)
    assert "## Failed candidates" in text and "simulated clustering failure" in text and "(2 plan(s)" in text
    knee = next(r for r in run.recommendations if r["method"] == "nbi_knee")
    assert f"row {knee['row']}, `{knee['label']}`" in text
    assert "| knee, closest to ideal |" in text
    assert "explore_fronts.ipynb" in text


def test_summary_without_final_has_no_final_columns(tmp_path: Path) -> None:
    text = summary_markdown(load_run(write_run(tmp_path / "r", final=False)))
    assert "nothing was measured on a report split" in text and "| final |" not in text


@pytest.mark.slow
def test_cli_regenerates_a_run_and_reports_errors_in_one_line(synthetic_run: Path, tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str],
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    assert main([str(synthetic_run)]) == 0
    assert capsys.readouterr().out.split() == [str(synthetic_run / f.file) for f in FIGURES] + [
        str(synthetic_run / "summary.md")]
    monkeypatch.setenv(RUN_ENV, str(synthetic_run))
    (synthetic_run / "summary.md").unlink()
    assert main([]) == 0 and (synthetic_run / "summary.md").is_file()  # the run from $MOO_COMPRESS_RUN
    assert main([str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "does not exist" in err


def test_report_package_does_not_import_the_search() -> None:
    """The search imports the report at the end of a run, never the other way round (nor torch)."""
    code = ("import sys, moo_compress.report, moo_compress.cli.report; "
            "bad = [m for m in sys.modules if m.startswith('moo_compress.search') or m == 'torch']; print(bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[2]).stdout
    assert out.strip() == "[]"


@pytest.mark.slow
def test_a_real_run_renders(tiny_run: Path) -> None:
    run = load_run(tiny_run)
    assert run.has_final and len(run.pareto) >= 1
    for path in render_run(tiny_run):
        assert path.stat().st_size > 0


def _ms(value: float) -> str:
    """Three significant digits, trailing zeros kept (an independent formatting of the summary's numbers)."""
    return f"{value:#.3g}".rstrip(".")


def test_summary_of_a_run_with_latency_says_how_it_was_measured(latency_run: Path) -> None:
    run = load_run(latency_run)
    text = summary_markdown(run, FIGURES)
    latency = text[text.index("## Latency"):text.index("## Recommendations")]
    for fact in ("fourth objective", "onnxruntime 1.32.0 CPUExecutionProvider, 1 thread(s)",
                 "Synthetic CPU @ 3.0GHz, 2 cores", "median of 50 timed runs", "interquartile range",
                 "batch of 64 images", "milliseconds"):
        assert fact in latency, fact
    assert "The reference took 2.00 ms at batch 1 (interquartile range 1.90-2.20 ms) and 110 ms at batch 64" in latency
    assert "not part of the evaluation cache's invariance across execution modes" in latency
    assert "spread of repeated runs are tied" in latency
    assert "interquartile range of those per-round ratios: a range wholly above 1 is faster" in latency
    assert "and batch-1 latency of the deployed model (milliseconds, lower is better" in text  # the objectives
    assert "at least as good in all four objectives (latency included)" in text


def test_summary_pareto_table_has_latency_columns(latency_run: Path) -> None:
    run = load_run(latency_run)
    lines = summary_markdown(run).splitlines()
    head = next(line for line in lines if line.startswith("| # | plan |"))
    cells = [c.strip() for c in head.strip("|").split("|")]
    assert cells[-4:] == ["latency, batch 1 (ms) [IQR]", "speed-up vs. reference (x) [IQR]",
                          "latency, batch 64 (ms, speed-up)", "flags"]
    rows = [line for line in lines if line.startswith("| ") and line.split("|")[1].strip().isdigit()]
    assert len(rows) == len(run.pareto)
    for line, (_, r) in zip(rows, run.pareto.iterrows(), strict=True):
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert len(cells) == len(head.strip("|").split("|"))
        assert cells[-4] == f"{_ms(r['final/latency_ms'])} [{_ms(r['final/latency_low_ms'])}, " \
                            f"{_ms(r['final/latency_high_ms'])}]"
        assert cells[-3] == (f"{r['final/latency_speedup']:.2f} [{r['final/latency_speedup_low']:.2f}, "
                             f"{r['final/latency_speedup_high']:.2f}]")
        assert cells[-2] == f"{_ms(r['final/latency_batch_ms'])} ({r['final/latency_batch_speedup']:.2f}x)"


def test_summary_of_a_latency_constraint_names_the_limit(tmp_path: Path) -> None:
    text = summary_markdown(load_run(write_run(tmp_path / "r", latency="constraint")), FIGURES)
    assert "Latency was measured for the constraint of at most 1.5 ms at batch 1, not optimised" in text
    assert "fourth objective" not in text and "all three objectives" in text
    assert "| latency, batch 1 (ms) [IQR] |" in text
    assert "the dashed line is the space's limit of 1.5 ms" in text  # the accuracy-latency panel


def test_summary_without_latency_never_mentions_it(synthetic_run: Path) -> None:
    text = summary_markdown(load_run(synthetic_run), FIGURES).replace(str(synthetic_run), "<run>")  # the test's name
    assert "## Pareto set" in text and "latency" not in text.lower() and "speed-up" not in text


def test_summary_describes_the_latency_in_the_figures(latency_run: Path) -> None:
    text = summary_markdown(load_run(latency_run), FIGURES)
    assert "the second row plots clean accuracy, robustness and compression ratio against latency" in text
    assert "coloured by batch-1 latency" in text and "all three objectives at once" not in text
    assert "The last axis is batch-1 latency" in text
    assert "Right: clean accuracy against batch-1 latency measured on this machine" in text


def test_the_summary_shows_the_recovery_warning(synthetic_run: Path) -> None:
    knees_file = synthetic_run / "knees.json"
    knees = json.loads(knees_file.read_text())
    knees["baseline"]["recovery"] = {"clean_delta": {"estimate": -3.0, "low": -4.0, "high": -2.0},
                                     "mca_delta": {"estimate": -1.0, "low": -2.0, "high": 0.0},
                                     "changed": 300, "n_clean": 5000, "warning": "the space's recovery costs X"}
    knees_file.write_text(json.dumps(knees))
    summary = summary_markdown(load_run(synthetic_run))
    assert "**Warning:** the space's recovery costs X." in summary
