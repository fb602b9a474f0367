"""Parallel and distributed evaluation: same results as serial, shared caches, lost workers."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

from moo_compress.errors import ConfigError
from moo_compress.models import create_model
from moo_compress.search import (
    ExecutionSettings,
    FidelitySettings,
    SearchSettings,
    TargetSettings,
)
from moo_compress.search.cache import CONTEXT_FILE
from moo_compress.search.executors import (
    WORKER_RESTART_MESSAGE,
    ExecutorConfig,
    default_threads,
    ignore_worker_restarts,
)
from moo_compress.search.run import run_search
from tests.conftest import make_image_folder
from tests.search.conftest import TINY_SPACE

#: Columns of pareto.csv that may differ between execution modes: timings and cache hits.
TIMING = ("seconds", "cache_hit")


def _metrics(frame: pd.DataFrame) -> pd.DataFrame:
    """Every column of the front except timings and cache hits: plans, metrics, intervals, flags."""
    return frame.drop(columns=[c for c in frame.columns if c in TIMING])
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def setting(tmp_path_factory: pytest.TempPathFactory) -> SearchSettings:
    root = tmp_path_factory.mktemp("parallel")
    data = make_image_folder(root / "cifar10-tiny", classes=10, per_split={"train": 2, "test": 6})
    torch.manual_seed(0)
    weights = root / "resnet20.pt"
    torch.save(create_model("resnet20").state_dict(), weights)
    space = root / "tiny.yaml"
    space.write_text(yaml.safe_dump(TINY_SPACE))
    return SearchSettings(TargetSettings("resnet20", weights=str(weights), data_root=str(data), space=str(space)),
                          fidelity=FidelitySettings(eval_images=20, select_images=30, final_images=30),
                          execution=ExecutionSettings(precision="bf16", device="cpu"))


@pytest.fixture(scope="module")
def serial(setting: SearchSettings, tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    root = tmp_path_factory.mktemp("serial")
    result = run_search(setting.replace(output={"out": str(root / "run")},
                                        execution={"cache_dir": str(root / "cache"), "workers": 1}),
                        log=lambda _: None)
    return _metrics(result.pareto)


def _round_trip(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame as read back from a CSV file (None -> NaN, 6 significant digits as the run writes)."""
    frame = frame.copy()
    frame["plan"] = [json.dumps(p, sort_keys=True, separators=(",", ":")) for p in frame["plan"]]
    return pd.read_csv(io.StringIO(frame.to_csv(index=False, float_format="%.6g")))


def _cli_args(setting: SearchSettings, out: Path, cache: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "moo_compress.search", "--arch", "resnet20", "--weights", str(setting.target.weights),
            "--data-root", str(setting.target.data_root), "--space", str(setting.target.space), "--eval-images", "20",
            "--select-images", "30", "--final-images", "30", "--precision", "bf16", "--device", "cpu",
            "--out", str(out), "--cache-dir", str(cache), *extra]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "MOO_COMPRESS_OFFLINE": "1"}


def _all_records_valid(cache: Path) -> int:
    files = [f for f in cache.glob("evaluations/*/*.json") if f.name != CONTEXT_FILE]  # context.json: no record
    for f in files:
        record = json.loads(f.read_text())  # complete JSON, never a partial write
        assert record["status"] in ("ok", "failed") and record["plan_key"] == f.stem
    assert not list(cache.glob("evaluations/*/.*.tmp"))
    return len(files)


def test_executor_config_validation() -> None:
    assert ExecutorConfig().kind == "serial"
    assert ExecutorConfig(workers=2).kind == "processes"
    assert ExecutorConfig(workers=2, scheduler="local").kind == "dask"
    assert default_threads(2) * 2 <= max(2, os.cpu_count() or 1)
    with pytest.raises(ConfigError, match="--workers"):
        ExecutorConfig(workers=0)
    with pytest.raises(ConfigError, match="--scheduler"):
        ExecutorConfig(scheduler="my-cluster")


def _worker_malloc_env() -> str | None:
    return os.environ.get("MALLOC_TRIM_THRESHOLD_")


@pytest.mark.slow
def test_local_cluster_workers_keep_glibc_malloc_defaults() -> None:
    """Dask's default MALLOC_TRIM_THRESHOLD_ makes every activation an mmap (2x slower evaluation)."""
    pytest.importorskip("dask.distributed")
    from moo_compress.search.executors import close_executors, dask_client

    try:
        client = dask_client(ExecutorConfig(workers=2, scheduler="local"))
        found = client.run(_worker_malloc_env)
    finally:
        close_executors()
    assert len(found) == 2
    assert set(found.values()) == {os.environ.get("MALLOC_TRIM_THRESHOLD_")}


@pytest.mark.slow
def test_local_processes_and_dask_cluster_match_serial(setting: SearchSettings, serial: pd.DataFrame,
                                                       tmp_path: Path) -> None:
    """--workers 1, --workers 2 and --scheduler local, each from its own empty cache, give the same front,
    metrics, intervals and flags (bf16: evaluations run with the spec's fixed thread count)."""
    for name, options in (("loky", {"workers": 2}), ("dask", {"workers": 2, "scheduler": "local"})):
        result = run_search(setting.replace(output={"out": str(tmp_path / name)},
                                            execution={"cache_dir": str(tmp_path / f"cache-{name}"), **options}),
                            log=lambda _: None)
        pd.testing.assert_frame_equal(_metrics(result.pareto), serial, obj=name)
        assert _all_records_valid(tmp_path / f"cache-{name}") >= len(result.evaluations)


@pytest.mark.slow
def test_concurrent_runs_sharing_a_cache_finish_and_agree(setting: SearchSettings, serial: pd.DataFrame,
                                                          tmp_path: Path) -> None:
    cache = tmp_path / "shared-cache"
    procs = [subprocess.Popen(_cli_args(setting, tmp_path / f"run{i}", cache), env=_env(),
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for i in range(2)]
    for proc in procs:
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err[-2000:]
    for i in range(2):
        pareto = pd.read_csv(tmp_path / f"run{i}" / "pareto.csv")
        pd.testing.assert_frame_equal(_metrics(pareto), _round_trip(serial), check_dtype=False)
    _all_records_valid(cache)


@pytest.mark.slow
def test_killed_worker_loses_and_corrupts_nothing(setting: SearchSettings, serial: pd.DataFrame,
                                                  tmp_path: Path) -> None:
    psutil = pytest.importorskip("psutil")
    cache = tmp_path / "cache"
    proc = subprocess.Popen(_cli_args(setting, tmp_path / "run", cache, "--workers", "2"), env=_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    killed = None
    deadline = time.time() + 300
    while killed is None and proc.poll() is None and time.time() < deadline:
        if list(cache.glob("evaluations/*/*.json")):  # the search is under way
            workers = [p for p in psutil.Process(proc.pid).children(recursive=True)
                       if "loky" in " ".join(p.cmdline()) and "resource_tracker" not in " ".join(p.cmdline())]
            if workers:
                workers[0].kill()
                killed = workers[0].pid
        time.sleep(0.02)
    _, err = proc.communicate(timeout=600)
    assert killed is not None, "the search finished before a worker could be killed"
    assert proc.returncode == 0, err[-2000:]
    pareto = pd.read_csv(tmp_path / "run" / "pareto.csv")
    pd.testing.assert_frame_equal(_metrics(pareto), _round_trip(serial), check_dtype=False)
    evaluations = pd.read_csv(tmp_path / "run" / "evaluations.csv")
    assert (evaluations["status"] == "ok").all()
    _all_records_valid(cache)


def _loky_restarts(*, quiet: bool) -> tuple[set[int], list[warnings.WarningMessage]]:
    """Runs tasks whose workers outgrow loky's 300 MB leak guard; the worker pids and the warnings shown."""
    from joblib import Parallel, delayed, parallel_config

    def grow_once(mib: int) -> int:
        """From its second call in a worker on, keeps ``mib`` MiB more for the worker's life (as
        ``load_resources`` keeps each racing window's data); the worker's pid. (A local function: pickled
        by value, so the workers need not import this test module.)"""
        import numpy as np

        held = sys.__dict__.setdefault("_test_executors_held", [])  # on ``sys``: survives between tasks
        held.append(np.ones(mib * 2**20 // 8) if held else np.zeros(1))
        time.sleep(0.5)  # loky checks a worker's memory at most once a second: each worker lives for seconds
        return os.getpid()

    with warnings.catch_warnings(record=True) as shown:
        if quiet:
            ignore_worker_restarts()
        with parallel_config(backend="loky", n_jobs=2):
            pids = set(Parallel()(delayed(grow_once)(320) for _ in range(12)))
        warnings.warn("a warning of the project's own", UserWarning, stacklevel=2)
        time.sleep(0.5)  # loky's manager thread warns on its own time
    from joblib.externals.loky import get_reusable_executor

    get_reusable_executor().shutdown(wait=True)  # free the grown workers
    return pids, list(shown)


@pytest.mark.slow
def test_worker_restarts_of_the_leak_guard_do_not_reach_the_user() -> None:
    """loky restarts a worker whose memory grew 300 MB since its first task (our workers keep every racing
    window's data) and warns while tasks are queued; that one warning is hidden, every other one shows."""
    pids, shown = _loky_restarts(quiet=False)  # the cause, reproduced: workers restart, loky warns
    assert len(pids) > 2 and any(str(w.message).startswith(WORKER_RESTART_MESSAGE) for w in shown)
    pids, shown = _loky_restarts(quiet=True)
    assert len(pids) > 2  # the workers still restart (that bounds their memory) ...
    assert [str(w.message) for w in shown] == ["a warning of the project's own"]  # ... but only ours shows


def test_only_lokys_worker_restart_warning_is_hidden() -> None:
    def shown_after(message: str, module: str) -> list[str]:
        with warnings.catch_warnings(record=True) as shown:
            warnings.simplefilter("default")
            ignore_worker_restarts()
            warnings.warn_explicit(message, UserWarning, "process_executor.py", 1, module=module)
        return [str(w.message) for w in shown]

    restart = WORKER_RESTART_MESSAGE + ". This can be caused by a too short worker timeout or by a memory leak."
    assert shown_after(restart, "joblib.externals.loky.process_executor") == []
    assert shown_after(restart, "loky.process_executor") == []  # loky installed on its own
    assert shown_after(restart, "moo_compress.search.run") == [restart]  # the same words from elsewhere show
    assert shown_after("another loky warning", "joblib.externals.loky.process_executor") == ["another loky warning"]
