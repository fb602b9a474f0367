"""Corrupting a set of images into files, chunk by chunk, in this process or in a pool of workers.

A job writes ``corrupt(images, name, severity, seed=seed, params=params)`` into rows ``[row, row +
len(images))`` of a target: a ``.npy`` file that already exists (created with :func:`create_npy`), or
a PNG zip (:mod:`~moo_compress.data.image_store`) that this module writes. Jobs are cut into chunks
that start on a block boundary (:func:`~moo_compress.data.corruptions.block_size` of the images' size),
so the result does not depend on the number of workers. Workers memory-map the source images and the
``.npy`` targets; only PNG files (the compressed images) cross process boundaries.
:func:`generation_key` names what a run of jobs produces, so that files written by one run are reused
by a later one only when they would be the same.
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
from tqdm import tqdm

from moo_compress.data import image_store
from moo_compress.data.corruptions import DEFAULT_PARAM_SET, GENERATOR_VERSION, ParamSet, block_size, corrupt_into

__all__ = ["Job", "create_npy", "sync_file", "run_jobs", "default_workers", "generation_key", "progress_bar"]


@dataclass(frozen=True)
class Job:
    """Corrupt all source images with ``name`` at ``severity`` into ``target`` from row ``row`` on.

    Attributes:
        name: Corruption.
        severity: 1..5.
        target: The file written (a temporary name; ``run_jobs`` reports when it is complete).
        row: First row of the target the images go to.
        params: Parameter set name or :class:`ParamSet` (None: chosen by the images' size).
        fmt: ``npy`` (rows written in place) or ``png`` (a PNG zip, :mod:`~moo_compress.data.image_store`).
    """

    name: str
    severity: int
    target: Path
    row: int = 0
    params: str | ParamSet | None = None
    fmt: str = "npy"


def generation_key(clean_fingerprint: str, indices_hash: str, seed: int, severities: tuple[int, ...],
                   pset: ParamSet, shape: tuple[int, ...]) -> dict:
    """What the corrupted images of a run depend on: generator, parameters, chunking, seed and source.

    Args:
        clean_fingerprint: Fingerprint of the clean set the images come from.
        indices_hash: Hash of the images of it used (all, or a subset).
        seed: Corruption seed.
        severities: Severities of a release's blocks (empty for files holding one severity each).
        pset: Corruption parameter set.
        shape: ``(H, W, 3)`` of the images.

    Returns:
        A JSON-able dict; equal keys mean equal images.
    """
    key = {
        "generator_version": GENERATOR_VERSION,
        "params": pset.fingerprint(),
        "block_size": block_size(*shape[:2]),
        "seed": seed,
        "clean_fingerprint": clean_fingerprint,
        "indices": indices_hash,
        "severities": list(severities),
    }
    if pset.name != DEFAULT_PARAM_SET:  # absent: cifar, so keys written before parameter sets stay valid
        key["param_set"] = pset.name
    return key


def progress_bar(total: int, desc: str, enabled: bool) -> tqdm:
    """A progress bar counting corrupted images (pass its ``update`` as ``run_jobs``'s ``on_progress``)."""
    return tqdm(total=total, unit="img", unit_scale=True, desc=desc, disable=not enabled, smoothing=0.05)


def default_workers() -> int:
    """The number of CPUs this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def create_npy(path: Path, rows: int, shape: tuple[int, ...] = (32, 32, 3)) -> None:
    """Creates a uint8 ``.npy`` file of ``rows`` images of ``shape`` (sparse on disk until written)."""
    image_store.create(path, rows, shape, "npy")


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


def _run_chunk(job: Job, start: int, stop: int, seed: int, first_block: int,
               source: np.ndarray | None = None) -> tuple[int, list[bytes] | None]:
    """Corrupts source rows ``[start, stop)``; returns their count and, for a PNG target, their PNG files."""
    images = _SOURCE if source is None else source
    if job.fmt == "png":
        out = np.empty((stop - start, *images.shape[1:]), dtype=np.uint8)
        corrupt_into(out, images[start:stop], job.name, job.severity, seed=seed, first_block=first_block,
                     params=job.params)
        return stop - start, image_store.encode_png(out)
    target = np.load(job.target, mmap_mode="r+")
    try:
        corrupt_into(target[job.row + start: job.row + stop], images[start:stop], job.name, job.severity,
                     seed=seed, first_block=first_block, params=job.params)
        target.flush()
    finally:
        del target
    return stop - start, None


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
        images: uint8 source images ``(N, H, W, 3)``.
        jobs: What to write where.
        seed: Corruption seed.
        workers: Processes to use; 1 runs everything in this process.
        scratch: Folder for the copy of ``images`` that workers memory-map (needed when ``workers > 1``).
        on_progress: Called with the number of images just corrupted.
        on_target_done: Called when a target file is complete (to sync and rename it).
    """
    count = len(images)
    size = block_size(*images.shape[1:3])
    chunks = [(job, start, min(start + size, count)) for job in jobs for start in range(0, count, size)]
    pending: dict[Path, int] = {}
    for job, _, _ in chunks:
        pending[job.target] = pending.get(job.target, 0) + 1
    writers: dict[Path, image_store.PngZipWriter] = {}

    def finished(job: Job, start: int, result: tuple[int, list[bytes] | None]) -> None:
        done, blobs = result
        if blobs is not None:
            if job.target not in writers:
                writers[job.target] = image_store.PngZipWriter(job.target)
            writers[job.target].write(job.row + start, blobs)
        if on_progress is not None:
            on_progress(done)
        pending[job.target] -= 1
        if pending[job.target] == 0:
            if job.target in writers:
                writers.pop(job.target).close()
            if on_target_done is not None:
                on_target_done(job.target)

    try:
        if workers <= 1 or len(chunks) <= 1:
            for job, start, stop in chunks:
                finished(job, start, _run_chunk(job, start, stop, seed, start // size, source=images))
            return
        _run_pool(images, chunks, seed, size, workers, scratch, finished)
    finally:
        for writer in writers.values():  # an interrupted run: close what is open (its caller deletes it)
            writer.close()


def _run_pool(images: np.ndarray, chunks: list[tuple[Job, int, int]], seed: int, size: int, workers: int,
              scratch: Path | None, finished: Callable[[Job, int, tuple[int, list[bytes] | None]], None]) -> None:
    if scratch is None:
        raise ValueError("run_jobs needs a scratch folder when workers > 1")
    source = scratch / f".source-{os.getpid()}.npy"
    np.save(source, np.ascontiguousarray(images), allow_pickle=False)
    context = multiprocessing.get_context("spawn")  # fork is unsafe once torch has started threads
    try:
        with ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker,
                                 initargs=(str(source),)) as pool:
            todo = iter(chunks)
            running: dict[Future[tuple[int, list[bytes] | None]], tuple[Job, int]] = {}

            def submit(job: Job, start: int, stop: int) -> None:
                running[pool.submit(_run_chunk, job, start, stop, seed, start // size)] = (job, start)

            try:
                # keep a bounded queue so that targets complete (and can be renamed) in order
                for job, start, stop in todo:
                    submit(job, start, stop)
                    if len(running) >= 2 * workers:
                        break
                while running:
                    done, _ = wait(running, return_when=FIRST_COMPLETED)
                    for future in done:
                        job, start = running.pop(future)
                        finished(job, start, future.result())
                        nxt = next(todo, None)
                        if nxt is not None:
                            submit(*nxt)
            except BaseException:
                for future in running:
                    future.cancel()
                raise
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(source)
