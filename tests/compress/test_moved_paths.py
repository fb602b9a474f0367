"""The export, ONNX and latency modules moved to ``moo_compress.deploy``; the old import paths still work,
and ``compress`` / ``evaluation`` load nothing from ``deploy`` until a moved name is asked for."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

import moo_compress

# old module -> new module, as issue 23 moved them
MOVED = {
    "moo_compress.compress.export": "moo_compress.deploy.export",
    "moo_compress.compress.onnx_export": "moo_compress.deploy.onnx_export",
    "moo_compress.compress.onnx_graph": "moo_compress.deploy.graph",
    "moo_compress.compress.onnx_qdq": "moo_compress.deploy.qdq",
    "moo_compress.evaluation.latency": "moo_compress.deploy.latency",
    "moo_compress.evaluation.onnx_model": "moo_compress.deploy.onnx_model",
}


def _loaded_after(statement: str) -> set[str]:
    code = f"import sys; {statement}; print('\\n'.join(sorted(sys.modules)))"
    return set(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split())


@pytest.mark.parametrize("old", list(MOVED))
def test_old_module_paths_re_export_the_same_objects(old: str) -> None:
    if old.endswith(("onnx_graph", "onnx_qdq")):
        pytest.importorskip("onnx")
    shim, new = __import__(old, fromlist=["_"]), __import__(MOVED[old], fromlist=["_"])
    assert set(shim.__all__) >= set(new.__all__)
    for name in shim.__all__:
        assert getattr(shim, name) is getattr(new, name)


def test_package_names_that_moved_still_import_from_compress_and_evaluation() -> None:
    from moo_compress import compress, deploy, evaluation

    for package in (compress, evaluation):
        for name in package._DEPLOYED:
            assert getattr(package, name) is getattr(deploy, name)
            assert name in dir(package)
    with pytest.raises(AttributeError, match="no attribute 'no_such_name'"):
        compress.no_such_name  # noqa: B018


@pytest.mark.slow
def test_compress_and_evaluation_do_not_load_deploy() -> None:
    loaded = _loaded_after("import moo_compress.compress, moo_compress.evaluation")
    assert "moo_compress.compress.api" in loaded and "moo_compress.evaluation.evaluator" in loaded
    assert not any(m.startswith("moo_compress.deploy") for m in loaded)


def test_only_the_old_paths_import_deploy() -> None:
    root = Path(moo_compress.__file__).parent
    pattern = re.compile(r"^\s*(from|import)\s+moo_compress\.deploy\b", re.MULTILINE)
    shims = {f"{old.replace('.', '/')}.py" for old in MOVED}
    offenders = [str(p.relative_to(root.parent)) for folder in ("compress", "evaluation")
                 for p in (root / folder).rglob("*.py") if pattern.search(p.read_text())]
    assert sorted(offenders) == sorted(s for s in shims if (root.parent / s).is_file())
