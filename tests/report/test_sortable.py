"""The click-to-sort HTML table."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from moo_compress.report import load_run, pareto_table, sortable_table
from moo_compress.report.tables import format_ms


def test_sortable_table_html_holds_table_script_and_caption() -> None:
    frame = pd.DataFrame({"#": [0, 1], "plan": ["Q8", "P50-<C8>"], "ratio (x)": [3.8, float("nan")]})
    table = sortable_table(frame, caption="final fidelity")
    html = table._repr_html_()
    assert f'id="{table.table_id}"' in html and f'getElementById("{table.table_id}")' in html
    assert "<script>" in html and "<em>final fidelity</em>" in html
    assert "3.80" in html and "P50-&lt;C8&gt;" in html  # formatted floats, escaped text
    assert "final fidelity" in repr(table) and "Q8" in repr(table)


def test_every_table_gets_its_own_id() -> None:
    frame = pd.DataFrame({"a": [1]})
    assert sortable_table(frame).table_id != sortable_table(frame).table_id


def test_latency_columns_keep_their_digits_and_blank_missing_cells(latency_run: Path) -> None:
    run = load_run(latency_run)
    table = pareto_table(run)
    html = sortable_table(table).to_html()  # formats from the table's attrs
    fastest = float(run.pareto["final/latency_ms"].min())
    assert f"<td>{fastest:.3g}</td>" in html and f"<td>{fastest:.2f}</td>" not in html
    frame = pd.DataFrame({"latency, batch 1 (ms)": [0.49634, float("nan")]})
    html = sortable_table(frame, formats={"latency, batch 1 (ms)": format_ms}).to_html()
    assert "<td>0.496</td>" in html and "<td></td>" in html and "<td>n/a</td>" not in html
