"""``render_run`` and ``python -m moo_compress.report``: summary.md and every figure from the run's files."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from moo_compress.report import FIGURES, RUN_ENV, load_run, render_run, summary_markdown
from moo_compress.cli.report import main
from tests.report.conftest import write_run


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
