"""The click-to-sort HTML table."""

from __future__ import annotations

import pandas as pd

from moo_compress.report import sortable_table


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
