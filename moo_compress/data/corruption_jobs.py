"""Corrupting a set of images into ``.npy`` files, chunk by chunk, in this process or in a pool of workers.

A job writes ``corrupt(images, name, severity, seed=seed)`` into rows ``[row, row + len(images))`` of a
target ``.npy`` file that already exists (created with :func:`create_npy`). Jobs are cut into chunks
that start on a :data:`~moo_compress.data.corruptions.BLOCK_SIZE` boundary, so the result does not
depend on the number of workers. Workers memory-map the source images and the targets; nothing large
crosses process boundaries.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from moo_compress.data.corruptions import BLOCK_SIZE, corrupt_into

__all__ = ["Job", "create_npy", "sync_file", "run_jobs", "default_workers"]


@dataclass(frozen=True)
class Job:
    """Corrupt all source images with ``name`` at ``severity`` into ``target`` from row ``row`` on."""

    name: str
    severity: int
    target: Path
    row: int = 0


def default_workers() -> int:
    """The number of CPUs this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def create_npy(path: Path, rows: int, shape: tuple[int, ...] = (32, 32, 3)) -> None:
    """Creates a uint8 ``.npy`` file of ``rows`` images (sparse on disk until written)."""
    array = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=(rows, *shape))
    del array


def sync_file(path: Path) -> None:
    """Flushes a file's data to disk (memory-mapped writes included)."""
    with open(path, "rb+") as handle:
        os.fsync(handle.fileno())


_SOURCE: np.ndarray | None = None


def _init_worker(source: str) -> None:
    global _SOURCE
    import cv2
    import torch

    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    _SOURCE = np.load(source, mmap_mode="r")


def _run_chunk(job: Job, start: int, stop: int, seed: int, source: np.ndarray | None = None) -> int:
    images = _SOURCE if source is None else source
    target = np.load(job.target, mmap_mode="r+")
    try:
        corrupt_into(target[job.row + start: job.row + stop], images[start:stop], job.name, job.severity,
                     seed=seed, first_block=start // BLOCK_SIZE)
        target.flush()
    finally:
        del target
    return stop - start


def run_jobs(
    images: np.ndarray,
    jobs: Sequence[Job],
    *,
    seed: int,
    workers: int = 1,
    scratch: Path | None = None,
    on_progress: Callable[[int], None] | None = None,
    on_target_done: Callable[[Path], None] | None = None,
) -> None:
    """Runs every job; calls ``on_target_done(path)`` once all jobs writing to ``path`` have finished.

    Args:
        images: uint8 source images ``(N, 32, 32, 3)``.
        jobs: What to write where.
        seed: Corruption seed.
        workers: Processes to use; 1 runs everything in this process.
        scratch: Folder for the copy of ``images`` that workers memory-map (needed when ``workers > 1``).
        on_progress: Called with the number of images just corrupted.
        on_target_done: Called when a target file is complete (to sync and rename it).
    """
    count = len(images)
    chunks = [(job, start, min(start + BLOCK_SIZE, count)) for job in jobs for start in range(0, count, BLOCK_SIZE)]
    pending: dict[Path, int] = {}
    for job, _, _ in chunks:
        pending[job.target] = pending.get(job.target, 0) + 1

    def finished(job: Job, done: int) -> None:
        if on_progress is not None:
            on_progress(done)
        pending[job.target] -= 1
        if pending[job.target] == 0 and on_target_done is not None:
            on_target_done(job.target)

    if workers <= 1 or len(chunks) <= 1:
        for job, start, stop in chunks:
            finished(job, _run_chunk(job, start, stop, seed, source=images))
        return
    if scratch is None:
        raise ValueError("run_jobs needs a scratch folder when workers > 1")
    source = scratch / f".source-{os.getpid()}.npy"
    np.save(source, np.ascontiguousarray(images), allow_pickle=False)
    context = multiprocessing.get_context("spawn")  # fork is unsafe once torch has started threads
    try:
        with ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker,
                                 initargs=(str(source),)) as pool:
            todo = iter(chunks)
            running: dict[Future[int], Job] = {}
            try:
                # keep a bounded queue so that targets complete (and can be renamed) in order
                for job, start, stop in todo:
                    running[pool.submit(_run_chunk, job, start, stop, seed)] = job
                    if len(running) >= 2 * workers:
                        break
                while running:
                    done, _ = wait(running, return_when=FIRST_COMPLETED)
                    for future in done:
                        job = running.pop(future)
                        finished(job, future.result())
                        nxt = next(todo, None)
                        if nxt is not None:
                            running[pool.submit(_run_chunk, nxt[0], nxt[1], nxt[2], seed)] = nxt[0]
            except BaseException:
                for future in running:
                    future.cancel()
                raise
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(source)
