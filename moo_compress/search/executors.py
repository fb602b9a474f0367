"""Where the evaluations of a generation run: serially, in local processes, or on a Dask cluster.

All parallel paths go through joblib (``loky`` processes locally, joblib's ``dask`` backend on a
cluster), so no scheduler is written here. Tasks carry only an
:class:`~moo_compress.search.candidate.EvaluationSpec` and a plan dict; each worker process loads the
model and data once (:func:`~moo_compress.search.candidate.load_resources`) and keeps them for later
tasks, and writes every record to the shared evaluation cache itself.
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from moo_compress.errors import ConfigError
from moo_compress.search.candidate import EvaluationSpec, evaluate_and_store

__all__ = [
    "WORKER_RESTART_MESSAGE",
    "ExecutorConfig",
    "close_executors",
    "dask_client",
    "default_threads",
    "default_workers",
    "gpu_count",
    "ignore_worker_restarts",
    "run_tasks",
]

#: The start of the ``UserWarning`` loky raises when one of its workers exits while tasks are queued.
WORKER_RESTART_MESSAGE = "A worker stopped while some jobs were given to the executor"


@dataclass(frozen=True)
class ExecutorConfig:
    """How to run evaluations (pure data; the live pool lives in a process-level registry).

    Attributes:
        workers: Local worker processes (1 = serial, in this process).
        scheduler: ``None`` for local execution, ``"local"`` to start a ``dask.distributed.LocalCluster``
            with ``workers`` workers, or a scheduler address ``tcp://host:port``.
        threads_per_worker: torch threads per worker for specs that leave threads unset
            (``EvaluationSpec.threads`` is None); default ``cores // workers``. A spec's own thread count
            (the default: 1) always wins, so every execution mode computes the same numbers.
    """

    workers: int = 1
    scheduler: str | None = None
    threads_per_worker: int | None = None

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise ConfigError(f"--workers must be at least 1, got {self.workers}")
        if self.scheduler not in (None, "local") and not str(self.scheduler).startswith(("tcp://", "tls://", "inproc://")):
            raise ConfigError(f"--scheduler must be 'local' or an address like tcp://host:8786, got {self.scheduler!r}")

    @property
    def kind(self) -> str:
        """``serial``, ``processes`` or ``dask``."""
        if self.scheduler is not None:
            return "dask"
        return "serial" if self.workers == 1 else "processes"


def default_threads(workers: int) -> int:
    """torch threads per worker so that workers x threads does not exceed the cores."""
    return max(1, (os.cpu_count() or 1) // max(1, workers))


def _task(spec: EvaluationSpec, plan: dict[str, Any], threads: int | None) -> dict[str, Any]:
    if threads is not None and spec.threads is None:
        import torch

        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)
    return evaluate_and_store(spec, plan)


def gpu_count() -> int:
    """Number of visible CUDA devices (0 without CUDA)."""
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def default_workers(device: str, threads: int | None = 1) -> int:
    """One worker per GPU when evaluating on CUDA (``cuda`` or ``auto`` with GPUs), else one worker per
    ``threads`` CPU cores (1 without a fixed thread count).

    On CPU, workers of one thread each beat one process using every core (torch's intra-op threads
    share small layers badly): measured 1.15x faster for ResNet-20 on 2 cores
    (``benchmarks/RESULTS.md``, section "parallel").
    """
    gpus = gpu_count()
    if gpus >= 1 and str(device) in ("cuda", "auto"):
        return max(1, gpus)
    if str(device).startswith("cuda"):
        return 1
    return max(1, (os.cpu_count() or 1) // threads) if threads else 1


def _device_specs(spec: EvaluationSpec, n: int) -> list[EvaluationSpec]:
    """Spreads tasks over the GPUs round-robin (``cuda:0``, ``cuda:1``...) when several are visible."""
    gpus = gpu_count()
    if gpus < 2 or str(spec.device) not in ("cuda", "auto"):
        return [spec] * n
    return [dataclasses.replace(spec, device=f"cuda:{i % gpus}") for i in range(n)]


_CLIENTS: dict[str, Any] = {}


def dask_client(config: ExecutorConfig) -> Any:
    """The Dask client of ``config.scheduler`` (``local``: a ``LocalCluster`` of ``config.workers`` workers),
    started once per process and kept until :func:`close_executors`.

    Raises:
        ConfigError: without ``dask.distributed``, or when the scheduler cannot be reached.
    """
    key = str(config.scheduler)
    if key not in _CLIENTS:
        try:
            from dask.distributed import Client, LocalCluster
        except ImportError:
            raise ConfigError("--scheduler needs dask.distributed: pip install 'moo-compress[dask]'") from None
        if config.scheduler == "local":
            import dask

            # Dask's nanny sets MALLOC_TRIM_THRESHOLD_=65536 in its workers, which pins glibc's mmap threshold
            # at 128 KiB: every activation tensor is then mmap'd and unmapped, and evaluation runs 2x slower
            # (measured; benchmarks/RESULTS.md, section "parallel"). None unsets it.
            with dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}):
                cluster = LocalCluster(n_workers=config.workers, threads_per_worker=1, processes=True,
                                       dashboard_address=None)
            _CLIENTS[key] = Client(cluster)
        else:
            try:
                _CLIENTS[key] = Client(config.scheduler, timeout="20s")
            except OSError as exc:
                raise ConfigError(f"cannot reach the Dask scheduler at {config.scheduler}: {exc}") from None
    return _CLIENTS[key]


def ignore_worker_restarts() -> None:
    """Keeps loky's "A worker stopped while some jobs were given to the executor" warning from the user.

    Why workers stop: loky's memory-leak guard (``_MAX_MEMORY_LEAK_SIZE`` in
    ``joblib/externals/loky/process_executor.py``) ends a worker whose resident memory grew by 300 MB
    since its first task, and starts a fresh one. Our workers grow by design:
    :func:`~moo_compress.search.candidate.load_resources` keeps the model, images and corruptions of
    every spec a worker has seen, and each racing window is a new spec (a VGG-19 entry holds its own
    79 MiB copy of the weights), so a worker passes the limit after a few windows. The restart is what
    bounds that memory and it loses nothing (the worker leaves after sending its result; queued tasks
    go to its replacement, which reloads what it needs), so the warning, printed with its source line
    once per restarted worker, tells the user nothing they can act on. Loky's idle timeout (300 s)
    also stops workers, but only when nothing is queued, which never warns.

    The filter is process-wide, not a ``catch_warnings`` block around the call, because loky raises
    the warning from its executor-manager thread, possibly after :func:`run_tasks` returned (and
    ``catch_warnings`` is not thread-safe). It matches only that message, category and module: every
    other warning, the project's included, still shows. Calling it again adds nothing.
    """
    warnings.filterwarnings("ignore", message=WORKER_RESTART_MESSAGE, category=UserWarning,
                            module=r"(joblib\.externals\.)?loky\.process_executor\Z")


def run_tasks(config: ExecutorConfig, spec: EvaluationSpec,
              plans: Sequence[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Evaluates ``plans`` and yields their records in order, each as soon as it (and those before it) finish."""
    if not plans:
        return
    specs = _device_specs(spec, len(plans))
    if config.kind == "serial":
        for task_spec, plan in zip(specs, plans, strict=True):
            yield _task(task_spec, plan, config.threads_per_worker)
        return
    from joblib import Parallel, delayed, parallel_config

    if config.kind == "processes":
        threads = config.threads_per_worker or default_threads(config.workers)
        # always the configured size: resizing loky's reusable pool (a window of a single plan) restarts
        # its workers, which then reload the model and images
        backend = {"backend": "loky", "n_jobs": config.workers}
        ignore_worker_restarts()
    else:
        dask_client(config)
        threads = config.threads_per_worker or 1
        backend = {"backend": "dask", "n_jobs": -1}
    with parallel_config(**backend):
        yield from Parallel(return_as="generator")(
            delayed(_task)(task_spec, plan, threads) for task_spec, plan in zip(specs, plans, strict=True))


def close_executors() -> None:
    """Closes any Dask client (and LocalCluster) this process started."""
    for client in _CLIENTS.values():
        cluster = getattr(client, "cluster", None)
        client.close()
        if cluster is not None:
            cluster.close()
    _CLIENTS.clear()
