"""One way to report progress: logging for messages, a callback for per-plan lines, run.log in the run folder."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import pytest

from moo_compress.search.evaluation_record import EvaluationRecord
from moo_compress.search.progress import (
    Progress,
    ProgressBar,
    ProgressEvent,
    callable_logging,
    format_duration,
    run_log,
)


def test_a_progress_event_reads_as_the_command_line_shows_it() -> None:
    event = ProgressEvent(stage="gen 2/5", done=3, total=12, bound=True, label="P50-C8", window=(10, 20),
                          status="ok", seconds=1.25, elapsed=75.0, eta=math.nan)
    assert event.line() == "  gen 2/5 3/<=12 P50-C8 images 10-20: ok, 1.2s | 1m15s elapsed, ETA ?"
    assert format_duration(3725) == "1h02m" and format_duration(61) == "1m01s"


def test_progress_counts_computed_work_and_estimates_what_is_left() -> None:
    events: list[ProgressEvent] = []
    progress = Progress(events.append, started=0.0, workers=2)
    progress.start("gen 1/2", 2, [(4, 100)])
    progress.on_record(EvaluationRecord("ka", "a", {}, seconds=3.0, compress_seconds=1.0, n_clean=50, n_corrupted=50))
    progress.on_record(EvaluationRecord("kb", "b", {}, cache_hit=True, n_clean=50, n_corrupted=50))
    assert [e.status for e in events] == ["ok", "cached"] and events[-1].done == 2
    # one computed evaluation: 1 s compressing + 2 s for 100 images; 4 more of 100 images on 2 workers
    assert events[-1].eta == pytest.approx(4 * (1.0 + 100 * 2.0 / 100) / 2)


def test_messages_reach_a_callable_and_run_log_keeps_them_with_the_per_plan_lines(tmp_path: Path) -> None:
    lines: list[str] = []
    search_logger = logging.getLogger("moo_compress.search")
    with callable_logging(lines.append), run_log() as journal:
        search_logger.info("before the folder is known")
        journal.open(tmp_path)
        search_logger.warning("a warning")
        Progress(None, 0.0, 1).on_record(EvaluationRecord("k", "P50", {}))
    assert lines == ["before the folder is known", "warning: a warning"]  # per-plan lines go to the callback
    text = (tmp_path / "run.log").read_text()
    assert "before the folder is known" in text and "WARNING a warning" in text and "P50" in text
    search_logger.info("after the run")
    assert "after the run" not in (tmp_path / "run.log").read_text()


def test_the_python_api_is_silent_unless_asked(capsys: pytest.CaptureFixture[str]) -> None:
    logging.getLogger("moo_compress.search").warning("nobody listens")
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


def test_calling_the_search_package_is_deprecated_and_names_optimize(monkeypatch: pytest.MonkeyPatch) -> None:
    import moo_compress
    import moo_compress.search.api as old

    monkeypatch.setattr(old, "optimize", lambda *args, **kwargs: ("optimized", args, kwargs))
    with pytest.warns(DeprecationWarning, match=r"moo_compress\.optimize"):
        assert moo_compress.search("resnet20", quick=True) == ("optimized", ("resnet20",), {"quick": True})


def test_the_progress_bar_follows_the_events_of_each_stage_without_a_warning(capsys: pytest.CaptureFixture) -> None:
    import warnings

    bar = ProgressBar()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # tqdm's notebook bar warns when Jupyter widgets are missing
        for done, stage in ((1, "gen 1/2"), (2, "gen 1/2"), (1, "selection")):
            bar(ProgressEvent(stage=stage, done=done, total=3, bound=False, label="P50", window=None, status="ok",
                              seconds=1.0, elapsed=2.0, eta=math.nan))
    shown = capsys.readouterr().err
    assert "gen 1/2" in shown and "2/3" in shown and "selection" in shown and "P50: ok" in shown
