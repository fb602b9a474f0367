"""``notebooks/explore_fronts.ipynb``: committed without outputs, thin, and runs top to bottom headless.

CI (``.ci/run`` -> ``python -m pytest``) executes it here with nbclient against a tiny run made by the
test session, in a kernel of the interpreter running the tests (ipykernel comes with the ``dev`` extra).
"""

from __future__ import annotations

import ast
import os
from pathlib import Path

import nbformat
import pytest

from moo_compress.report import RUN_ENV, load_run

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = ROOT / "notebooks" / "explore_fronts.ipynb"


def _code_cells(nb: nbformat.NotebookNode) -> list[nbformat.NotebookNode]:
    return [c for c in nb.cells if c.cell_type == "code"]


def test_committed_notebook_has_no_outputs() -> None:
    """Outputs are stripped before commit (clear them in Jupyter, or ``jupyter nbconvert --clear-output``)."""
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    for cell in _code_cells(nb):
        assert cell.outputs == [], f"cell {cell.id} has outputs: clear them before committing"
        assert cell.execution_count is None, f"cell {cell.id} has an execution count: clear outputs before committing"
    assert nb.metadata.kernelspec.name == "python3"


def test_first_code_cell_holds_the_parameters() -> None:
    """Papermill's convention: one cell tagged ``parameters`` with plain assignments, first of the code cells."""
    cells = _code_cells(nbformat.read(NOTEBOOK, as_version=4))
    tagged = [c for c in cells if "parameters" in c.metadata.get("tags", [])]
    assert tagged == cells[:1]
    names = {t.id for node in ast.parse(tagged[0].source).body for t in node.targets}  # type: ignore[attr-defined]
    assert names == {"run_dir", "pick", "images", "export_dir"}


def test_notebook_holds_no_logic() -> None:
    """Code cells only call the package: no functions, classes, loops or branches of their own."""
    for cell in _code_cells(nbformat.read(NOTEBOOK, as_version=4)):
        source = "\n".join(line for line in cell.source.splitlines() if not line.startswith("%"))
        banned = (ast.FunctionDef, ast.ClassDef, ast.For, ast.While, ast.If, ast.With, ast.Try, ast.Lambda)
        assert not [n for n in ast.walk(ast.parse(source)) if isinstance(n, banned)], cell.source


def _inject_parameters(nb: nbformat.NotebookNode, **values: object) -> None:
    """Adds a cell of assignments after the ``parameters`` cell, as papermill does."""
    index = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
    source = "\n".join(f"{k} = {v!r}" for k, v in values.items())
    nb.cells.insert(index + 1, nbformat.v4.new_code_cell(source, metadata={"tags": ["injected-parameters"]}))


@pytest.mark.slow
def test_notebook_runs_top_to_bottom(tiny_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel
    from nbclient import NotebookClient

    try:
        KernelSpecManager().get_kernel_spec("python3")
    except NoSuchKernel:
        pytest.fail("no 'python3' Jupyter kernel: install the dev extra (pip install -e '.[dev]'), it brings "
                    "ipykernel")
    monkeypatch.setenv(RUN_ENV, str(tiny_run))  # the notebook's default run folder
    # the kernel runs in tmp_path: make the package importable there even when it is not installed
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p))
    run = load_run(tiny_run)
    pick = next(r["method"] for r in run.recommendations if r.get("plan"))
    exported = tmp_path / "exported"
    nb = nbformat.read(NOTEBOOK, as_version=4)
    # a small fidelity keeps CI fast: the run's own final fidelity, so the re-evaluation reads the cache
    _inject_parameters(nb, pick=pick, images=run.info["final"]["n_per_class"] * 10, export_dir=str(exported))
    client = NotebookClient(nb, kernel_name="python3", timeout=600, resources={"metadata": {"path": str(tmp_path)}})
    try:
        client.execute()
    finally:
        nbformat.write(nb, tmp_path / "explore_fronts.executed.ipynb")  # kept for a look when a cell fails
    outputs = [o for c in _code_cells(nb) for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert sum("image/png" in o.get("data", {}) for o in outputs) == 6  # every figure, shown inline
    html = [o["data"]["text/html"] for o in outputs if "text/html" in o.get("data", {})]
    assert any("<table" in h and "<script>" in h for h in html)  # the click-to-sort Pareto table
    assert any(str(tiny_run) in o.get("data", {}).get("text/plain", "") for o in outputs)  # the run it opened
    assert len(list(exported.glob("*.mcpk"))) == 1
