"""The golden run: a seeded tiny search whose tables are stored as test data.

Refactoring the search must not change what a user sees: the same settings give the same
``evaluations.csv``, ``pareto.csv`` and ``knees.json`` (apart from timing columns). A change that is
meant to move results re-approves the files in its own commit, saying why::

    python -m tests.search.test_golden   # rewrites tests/search/golden/
"""

from __future__ import annotations

import json
import math
import sys
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from tests.conftest import make_image_folder
from tests.search.conftest import TINY_SPACE

GOLDEN = Path(__file__).parent / "golden"
#: Columns and keys that hold wall times (or depend on them): never compared.
TIMING = {"seconds", "compress_seconds", "cache_hit", "finished"}
TABLES = ("evaluations.csv", "pareto.csv")


def golden_settings(folder: Path, *, test_per_class: int = 30, select_images: int = 40) -> Any:
    """A 4-class task a ResNet-20 learns in a few seconds (so that compression moves its accuracy) and
    the tiny space, searched by NSGA-II with held-out corruptions, seeded."""
    import torch
    import yaml

    from moo_compress.models import create_model
    from moo_compress.search import ExecutionSettings, FidelitySettings, OutputSettings, SearchSettings, TargetSettings

    data = make_image_folder(folder / "four", classes=4, per_split={"train": 24, "test": test_per_class})
    torch.manual_seed(0)
    # trained in float64: fp32 training differs between CPUs (kernels sum in different orders) and 30 SGD steps
    # carry a rounding difference into different predictions; in float64 it stays far below fp32's resolution
    model = create_model("resnet20", num_classes=4).double()
    images, labels = _tensors(data / "train")
    images = images.double()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    model.train()
    for step in range(60):
        batch = torch.arange(step * 16, step * 16 + 16) % len(images)
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(images[batch]), labels[batch]).backward()
        optimizer.step()
    weights = folder / "resnet20-four.pt"
    torch.save(model.float().state_dict(), weights)
    space = folder / "golden.yaml"
    space.write_text(yaml.safe_dump({**TINY_SPACE, "name": "golden", "algorithm": {"pop_size": 6, "generations": 3}}))
    return SearchSettings(
        TargetSettings("resnet20", dataset="imagefolder", weights=str(weights), data_root=str(data),
                       space=str(space)),
        fidelity=FidelitySettings(eval_images=24, select_images=select_images, final_images=60),
        execution=ExecutionSettings(precision="fp32", device="cpu", cache_dir=str(folder / "cache"), workers=1),
        output=OutputSettings(out=str(folder / "run")),
    )


def _tensors(folder: Path) -> tuple[Any, Any]:
    """The images of an ImageFolder tree, normalised as CIFAR-10 ResNet-20 checkpoints expect."""
    import numpy as np
    import torch
    from PIL import Image

    from moo_compress.models import model_defaults

    defaults = model_defaults("resnet20")
    files = sorted(folder.glob("*/*.png"))
    x = torch.tensor(np.stack([np.asarray(Image.open(f), dtype=np.float32) / 255 for f in files])).permute(0, 3, 1, 2)
    x = (x - torch.tensor(defaults.mean)[:, None, None]) / torch.tensor(defaults.std)[:, None, None]
    y = torch.tensor([sorted({f.parent.name for f in files}).index(f.parent.name) for f in files])
    return x, y


def _search(folder: Path) -> Path:
    from moo_compress.search import run_search

    settings = golden_settings(folder)
    run_search(settings, log=lambda _: None)
    return Path(settings.output.out)


def _table(path: Path) -> pd.DataFrame:
    frame = pd.read_csv(path)
    return frame.drop(columns=[c for c in frame.columns if c in TIMING]).sort_index(axis=1)


def _strip(value: Any) -> Any:
    """``knees.json`` without timing keys, with floats rounded to 9 significant digits."""
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if k not in TIMING}
    if isinstance(value, list):
        return [_strip(v) for v in value]
    if isinstance(value, float) and math.isfinite(value):
        return float(f"{value:.9g}")
    return value


def _knees(path: Path) -> Any:
    return _strip(json.loads(path.read_text()))


@pytest.mark.slow
def test_the_golden_run_gives_the_stored_tables(tmp_path: Path) -> None:
    out = _search(tmp_path)
    for name in TABLES:
        pd.testing.assert_frame_equal(_table(out / name), _table(GOLDEN / name), check_exact=False, rtol=1e-9,
                                      obj=name)
    assert _knees(out / "knees.json") == _knees(GOLDEN / "knees.json")


def _approve() -> None:  # pragma: no cover - run by hand to re-approve the golden files
    with tempfile.TemporaryDirectory() as folder:
        out = _search(Path(folder))
        GOLDEN.mkdir(exist_ok=True)
        for name in (*TABLES, "knees.json"):
            (GOLDEN / name).write_bytes((out / name).read_bytes())
    print(f"golden files written to {GOLDEN}", file=sys.stderr)


if __name__ == "__main__":
    _approve()
