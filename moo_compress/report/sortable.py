"""A table that sorts when its column headers are clicked, in Jupyter and in any browser, with no
server and no extra package: plain HTML from pandas plus a few lines of JavaScript.

Where scripts do not run (a notebook viewed on GitHub, an untrusted notebook) it is a plain table.
"""

from __future__ import annotations

import html
import math
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

__all__ = ["SortableTable", "sortable_table"]

_SCRIPT = """
<script>
(function () {
  var table = document.getElementById("%(id)s");
  if (!table || !table.tHead) return;
  var heads = table.tHead.rows[table.tHead.rows.length - 1].cells;
  function value(row, i) { return row.cells[i] ? row.cells[i].textContent.trim() : ""; }
  Array.prototype.forEach.call(heads, function (th, i) {
    th.style.cursor = "pointer";
    th.title = "click to sort";
    th.addEventListener("click", function () {
      var ascending = th.getAttribute("data-order") !== "ascending";
      Array.prototype.forEach.call(heads, function (h) { h.removeAttribute("data-order"); });
      th.setAttribute("data-order", ascending ? "ascending" : "descending");
      var body = table.tBodies[0];
      var rows = Array.prototype.slice.call(body.rows);
      rows.sort(function (a, b) {
        var x = value(a, i), y = value(b, i), nx = parseFloat(x), ny = parseFloat(y);
        var c;
        if (isNaN(nx) && isNaN(ny)) c = x.localeCompare(y);
        else if (isNaN(nx)) return 1;   /* blanks and n/a last, whatever the order */
        else if (isNaN(ny)) return -1;
        else c = nx - ny;
        return ascending ? c : -c;
      });
      rows.forEach(function (r) { body.appendChild(r); });
    });
  });
})();
</script>
"""

_STYLE = """
<style>
#%(id)s th[data-order="ascending"]::after { content: " ▲"; }
#%(id)s th[data-order="descending"]::after { content: " ▼"; }
#%(id)s td, #%(id)s th { padding: 2px 8px; text-align: right; }
#%(id)s tbody tr:nth-child(even) { background: rgba(127, 127, 127, 0.08); }
</style>
"""


@dataclass(frozen=True)
class SortableTable:
    """A DataFrame displayed as an HTML table whose headers sort it (click again to reverse).

    Attributes:
        frame: The table.
        caption: A line above the table.
        float_format: Format of float cells.
        formats: Column -> function formatting its cells, for columns the common ``float_format`` does
            not fit (latency in milliseconds keeps three significant digits); missing cells stay blank.
    """

    frame: pd.DataFrame
    caption: str | None = None
    float_format: str = "{:.2f}"
    table_id: str = field(default_factory=lambda: f"moo-table-{uuid.uuid4().hex[:8]}")
    formats: Mapping[str, Callable[[Any], str]] = field(default_factory=dict)

    def to_html(self) -> str:
        """The table, its style and its sorting script as one HTML fragment."""
        formatters = {c: _blank_missing(f) for c, f in self.formats.items() if c in self.frame}
        table = self.frame.to_html(index=False, table_id=self.table_id, na_rep="", formatters=formatters or None,
                                   float_format=lambda v: self.float_format.format(v), escape=True, border=0)
        caption = f"<p><em>{html.escape(self.caption)}</em></p>" if self.caption else ""
        values = {"id": self.table_id}
        return _STYLE % values + caption + table + _SCRIPT % values

    def _repr_html_(self) -> str:
        return self.to_html()

    def __repr__(self) -> str:
        return (f"{self.caption}\n" if self.caption else "") + self.frame.to_string(index=False)


def _blank_missing(format_cell: Callable[[Any], str]) -> Callable[[Any], str]:
    """``format_cell``, with missing cells blank (as ``na_rep``, which pandas does not apply to formatters)."""
    def cell(value: Any) -> str:
        missing = value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA
        return "" if missing else format_cell(value)
    return cell


def sortable_table(frame: pd.DataFrame, *, caption: str | None = None, float_format: str = "{:.2f}",
                   formats: Mapping[str, Callable[[Any], str]] | None = None) -> SortableTable:
    """Wraps ``frame`` for display as a click-to-sort table (shown by Jupyter as the cell's value).

    ``formats`` (column -> cell formatter) defaults to ``frame.attrs["formats"]``, which
    :func:`~moo_compress.report.tables.pareto_table` sets for the latency columns.
    """
    formats = frame.attrs.get("formats", {}) if formats is None else formats
    return SortableTable(frame=frame, caption=caption, float_format=float_format, formats=dict(formats))
