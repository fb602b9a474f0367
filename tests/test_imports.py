"""Import layering: the search loads no plotting library; the report never imports the search."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import moo_compress


def _modules_after(statement: str) -> set[str]:
    code = f"import sys; {statement}; print('\\n'.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return set(out.split())


def test_importing_the_search_loads_no_plotting_library() -> None:
    loaded = _modules_after("import moo_compress.search")
    assert "moo_compress.search.api" in loaded
    assert not {m for m in loaded if m.split(".")[0] in ("matplotlib", "moo_compress.report")}
    assert not any(m.startswith("moo_compress.report") for m in loaded)


def test_the_report_imports_nothing_from_the_search() -> None:
    loaded = _modules_after("import moo_compress.report")
    assert "moo_compress.report.rundata" in loaded
    assert not any(m.startswith("moo_compress.search") for m in loaded)
    root = Path(moo_compress.__file__).parent / "report"
    pattern = re.compile(r"^\s*(from|import)\s+moo_compress\.search\b", re.MULTILINE)
    offenders = [str(p) for p in root.rglob("*.py") if pattern.search(p.read_text())]
    assert not offenders  # also no lazy imports inside functions
