"""A real Dask cluster: a scheduler and two workers in separate processes over TCP (as on other
machines), one worker killed while it is certainly inside a task. Its candidates are retried on the
other worker, nothing is lost, and the front equals a serial run's."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

from moo_compress.models import create_model
from tests.conftest import make_image_folder
from tests.search.conftest import TINY_SPACE

pytest.importorskip("dask.distributed")
pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
#: Columns that may differ between execution modes: timings and cache hits.
TIMING = ("seconds", "cache_hit")

#: Loaded by the doomed worker (``dask worker --preload``): its first evaluation announces itself in a
#: file and then blocks, so the test kills the worker while it is inside that task, not by luck of timing.
PAUSE_PRELOAD = '''
import os, time
from pathlib import Path
from moo_compress.search import executors

_original = executors._task

def _task(*args, **kwargs):
    Path(os.environ["PAUSE_DIR"], f"inside-{os.getpid()}").write_text("")
    while True:
        time.sleep(1)

executors._task = _task
'''


def _env(**extra: str) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
           "MOO_COMPRESS_OFFLINE": "1", **extra}
    env.pop("MALLOC_TRIM_THRESHOLD_", None)
    return env


def _wait_for(condition, what: str, timeout: float = 120.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.time() + timeout
    while not condition():
        if time.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


@pytest.fixture
def setup(tmp_path: Path) -> dict[str, Path]:
    data = make_image_folder(tmp_path / "cifar10-tiny", classes=10, per_split={"train": 2, "test": 6})
    torch.manual_seed(0)
    weights = tmp_path / "resnet20.pt"
    torch.save(create_model("resnet20").state_dict(), weights)
    space = tmp_path / "tiny.yaml"
    space.write_text(yaml.safe_dump(TINY_SPACE))
    return {"root": tmp_path, "data": data, "weights": weights, "space": space}


def _search(setup: dict[str, Path], name: str, *extra: str) -> list[str]:
    root = setup["root"]
    return [sys.executable, "-m", "moo_compress.search", "--arch", "resnet20", "--weights", str(setup["weights"]),
            "--data-root", str(setup["data"]), "--space", str(setup["space"]), "--eval-images", "20",
            "--select-images", "30", "--final-images", "30", "--precision", "fp32", "--device", "cpu",
            "--out", str(root / name), "--cache-dir", str(root / f"cache-{name}"), *extra]


@pytest.fixture
def cluster(setup: dict[str, Path]) -> Iterator[dict[str, object]]:
    """A scheduler and two single-thread workers without nannies (a killed worker stays dead); the first
    worker blocks inside its first task."""
    root = setup["root"]
    file = root / "scheduler.json"
    pause = root / "pause"
    pause.mkdir()
    (root / "pause_preload.py").write_text(PAUSE_PRELOAD)
    procs = [subprocess.Popen([sys.executable, "-m", "dask", "scheduler", "--scheduler-file", str(file), "--port", "0",
                               "--no-dashboard"], env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    _wait_for(lambda: file.is_file() and file.stat().st_size > 0, "the scheduler")
    address = json.loads(file.read_text())["address"]
    worker = [sys.executable, "-m", "dask", "worker", address, "--nthreads", "1", "--no-nanny", "--no-dashboard"]
    procs.append(subprocess.Popen([*worker, "--name", "doomed", "--preload", str(root / "pause_preload.py")],
                                  env=_env(PAUSE_DIR=str(pause)), stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL, cwd=root))
    procs.append(subprocess.Popen([*worker, "--name", "survivor"], env=_env(), stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL))
    from dask.distributed import Client

    with Client(address, timeout="60s") as client:
        client.wait_for_workers(2, timeout=120)
    try:
        yield {"address": address, "doomed": procs[1], "pause": pause}
    finally:
        for proc in reversed(procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()


def test_a_worker_killed_inside_a_task_loses_nothing(setup: dict[str, Path], cluster: dict[str, object]) -> None:
    serial = subprocess.run(_search(setup, "serial", "--workers", "1"), env=_env(), capture_output=True, text=True,
                            timeout=600)
    assert serial.returncode == 0, serial.stderr[-2000:]

    run = subprocess.Popen(_search(setup, "tcp", "--scheduler", str(cluster["address"])), env=_env(),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    pause = cluster["pause"]
    assert isinstance(pause, Path)
    _wait_for(lambda: any(pause.glob("inside-*")) or run.poll() is not None, "the doomed worker's first task")
    assert run.poll() is None, run.communicate()[1][-2000:]  # the search cannot finish while a task is held
    doomed = cluster["doomed"]
    assert isinstance(doomed, subprocess.Popen)
    assert next(pause.glob("inside-*")).name == f"inside-{doomed.pid}"
    doomed.kill()  # SIGKILL inside the task: no clean-up, no goodbye to the scheduler
    out, err = run.communicate(timeout=600)
    assert run.returncode == 0, err[-2000:]
    assert doomed.wait(timeout=10) == -signal.SIGKILL

    root = setup["root"]
    serial_front = pd.read_csv(root / "serial" / "pareto.csv")
    tcp_front = pd.read_csv(root / "tcp" / "pareto.csv")
    drop = [c for c in serial_front.columns if c in TIMING]
    pd.testing.assert_frame_equal(tcp_front.drop(columns=drop), serial_front.drop(columns=drop))
    evaluations = pd.read_csv(root / "tcp" / "evaluations.csv")
    assert len(evaluations) == len(pd.read_csv(root / "serial" / "evaluations.csv"))
    assert (evaluations["status"] == "ok").all()
    history = pd.read_csv(root / "tcp" / "history.csv")
    assert history["failed"].sum() == 0
